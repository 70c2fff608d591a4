"""The `dgm` command end to end, in process: list, train, resume, sample, evaluate, report, errors."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dgm.cli import PRECISIONS, main
from dgm.core import AUTOCAST_TYPES
from dgm.runs import evaluate_run

SMALL_MOONS = ["--data-arg", "n_train=1024", "--data-arg", "n_test=512"]


def test_list_names_models_data_and_recipes(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("realnvp", "made", "histogram", "gan", "moons-raw", "mnist-binary", "realnvp-moons"):
        assert name in out


def test_train_evaluate_sample_report(tmp_path, capsys):
    run = tmp_path / "flow"
    assert main(["train", "--model", "realnvp", "--data", "moons-raw", *SMALL_MOONS, "--model-arg", "n_layers=2",
                 "--model-arg", "hidden=[8]", "--max-epochs", "2", "--batch-size", "128", "--out", str(run),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "NLL = " in out and "data entropy 1.00" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["likelihood"] == "exact" and metrics["n_test"] == 512
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nll_nats"] / (2 * np.log(2)))
    assert json.loads((run / "config.json").read_text())["config"]["hidden"] == [8]

    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["nll_nats"] == pytest.approx(metrics["nll_nats"])

    assert main(["sample", str(run), "-n", "16", "-o", str(tmp_path / "s.npz")]) == 0
    samples = np.load(tmp_path / "s.npz")["samples"]
    assert samples.shape == (16, 2) and np.isfinite(samples).all()
    # a sampling option reaches the model: at temperature 0.01 the samples are the image of the base's mode
    assert main(["sample", str(run), "-n", "16", "-o", str(tmp_path / "cold.npz"), "--sample-arg",
                 "temperature=0.01"]) == 0
    cold = np.load(tmp_path / "cold.npz")["samples"]
    assert np.ptp(cold, axis=0).max() < 0.1 * np.ptp(samples, axis=0).min()
    assert main(["sample", str(run), "-o", str(tmp_path / "x.npz"), "--sample-arg", "steps=50"]) == 2
    assert "no sampling option(s) steps; its options are: temperature" in capsys.readouterr().err
    assert main(["sample", str(run), "-n", "100", "-o", str(tmp_path / "s.png"), "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)  # as tests/conftest.py sets it
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["report", str(tmp_path), "-o", str(tmp_path / "report.html")]) == 0  # a folder of runs
    assert "NLL = " in capsys.readouterr().out
    assert "samples.png" in (tmp_path / "report.html").read_text()


def test_recipe_with_overrides_and_exact_resume(tmp_path):
    common = ["histogram-1d", "--batch-size", "256", "--no-progress", "--no-evaluate"]
    assert main(["train", *common, "--max-epochs", "4", "--out", str(tmp_path / "straight"), "--no-pictures"]) == 0
    assert not (tmp_path / "straight" / "samples.png").exists()
    assert main(["train", *common, "--max-epochs", "2", "--out", str(tmp_path / "split")]) == 0
    (tmp_path / "split" / "metrics.json").write_text('{"nll_nats": 9.9}')  # evaluated after the first part
    assert main(["train", "--resume", str(tmp_path / "split"), "--max-epochs", "4", "--no-progress",
                 "--no-evaluate"]) == 0
    assert not (tmp_path / "split" / "metrics.json").exists()  # it described the model before the second part
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "split" / "model.safetensors")
    assert torch.equal(straight["logits"], resumed["logits"])
    assert (tmp_path / "split" / "probabilities.png").exists() and (tmp_path / "split" / "samples.png").exists()
    assert main(["sample", str(tmp_path / "split"), "-n", "500", "-o", str(tmp_path / "hist.png")]) == 0
    assert (tmp_path / "hist.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((tmp_path / "split" / "run.json").read_text())
    assert record["train"]["max_epochs"] == 4 and record["train"]["batch_size"] == 256


@pytest.mark.parametrize("arguments, message", [
    (["train", "--model", "nothing", "--data", "moons"], "unknown model 'nothing'"),
    (["train", "--model", "made", "--data", "nowhere"], "unknown data set 'nowhere'"),
    (["train", "--model", "made"], "give a recipe"),
    (["train", "no-such-recipe"], "unknown recipe"),
    (["train", "--model", "made", "--data", "moons", "--model-arg", "hidden"], "KEY=VALUE"),
    (["train", "--model", "gan", "--data", "mnist-binary"], "takes no levels"),
    (["train", "--model", "made", "--data", "digits", "--data-arg", "colour=1"],
     "unexpected keyword argument 'colour'"),
    (["train", "--model", "made", "--data", "digits", "--model-arg", "hidden=3"], "cannot be built from"),
    (["train", "--model", "realnvp", "--data", "moons", "--model-arg", "hidden=[-4]"], "positive integers"),
    (["train", "--model", "realnvp", "--data", "moons", "--max-epochs", "-3"], "max_epochs must be positive"),
    (["train", "--model", "realnvp", "--data", "moons", "--grad-clip", "-1"], "grad_clip must be positive"),
    (["train", "--model", "realnvp", "--data", "moons", "--ema-decay", "1.5"], "ema_decay must lie in"),
    (["train", "--model", "realnvp", "--data", "moons", "--strategy", "nonsense"], "invalid strategy name"),
    (["train", "--resume", "/nonexistent/run", "--lr", "0.5"], "only --max-epochs, --max-steps, --max-time"),
    (["train", "--model", "gan", "--data", "energy-u1", "--objective", "reverse_kl"], "density of its own samples"),
    (["train", "--model", "realnvp", "--data", "moons", "--objective", "reverse_kl"], "needs an energy"),
    (["train", "--model", "realnvp", "--data", "moons", "--anneal-steps", "5"], "option of objective='reverse_kl'"),
    (["train", "--model", "realnvp", "--data", "moons", "--sample-arg", "steps=5"], "no sampling option(s) steps"),
    (["evaluate", "/nonexistent/run"], "not a run folder"),
    (["evaluate", "/nonexistent/run", "--threads", "0"], "--threads must be at least 1"),
    (["sample", "/nonexistent/run", "-o", "x.jpg"], "must end in .png or .npz"),
])
def test_bad_input_gives_a_clear_error_and_exit_code_2(arguments, message, capsys):
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_the_command_line_offers_exactly_the_precisions_autocast_knows():
    """``dgm.cli`` names them without importing torch; ``dgm.core.AUTOCAST_TYPES`` maps them to arithmetic."""
    assert set(PRECISIONS) == set(AUTOCAST_TYPES)


def test_a_run_trained_in_bf16_samples_in_bf16_and_evaluates_with_likelihood_options(tmp_path, capsys):
    run = tmp_path / "ddpm"
    assert main(["train", "--model", "ddpm", "--data", "moons", *SMALL_MOONS, "--model-arg", "hidden=[16]",
                 "--model-arg", "steps=20", "--max-steps", "8", "--batch-size", "256", "--precision", "bf16-mixed",
                 "--out", str(run), "--no-progress", "--no-pictures", "--no-evaluate"]) == 0
    arrays = {}
    for precision in ("default", "bf16-mixed", "32-true"):
        flag = [] if precision == "default" else ["--precision", precision]
        assert main(["sample", str(run), "-n", "32", "-o", str(tmp_path / f"{precision}.npz"), *flag]) == 0
        arrays[precision] = np.load(tmp_path / f"{precision}.npz")["samples"]
        assert arrays[precision].dtype == np.float32 and np.isfinite(arrays[precision]).all()
    assert np.array_equal(arrays["default"], arrays["bf16-mixed"])  # the run's training precision
    assert not np.array_equal(arrays["bf16-mixed"], arrays["32-true"])
    assert np.abs(arrays["bf16-mixed"] - arrays["32-true"]).max() < 0.05 * np.abs(arrays["32-true"]).max()
    capsys.readouterr()

    assert main(["evaluate", str(run), "--metrics", "nll", "--likelihood-arg", "method=ode"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["likelihood_options"] == {"method": "ode"} and metrics["likelihood"] == "lower_bound"
    assert main(["evaluate", str(run), "--metrics", "nll", "--likelihood-arg", "samples=3"]) == 2
    assert "takes no option samples; its options are: atol, method, rtol, solver, timesteps, trace" in \
        capsys.readouterr().err

    quality = {}  # sample quality draws in the run's precision unless told otherwise: the same seed, other samples
    for precision in (None, "bf16-mixed", "32-true"):
        torch.manual_seed(0)
        metrics = evaluate_run(run, sample_quality={"metrics": ["fid-raw"], "n": 200}, precision=precision)
        quality[precision] = metrics["sample_quality"]["fid-raw"]
        assert metrics["sampling_precision"] == (precision or "bf16-mixed")
    assert quality[None] == quality["bf16-mixed"] != quality["32-true"]
