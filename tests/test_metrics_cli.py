"""`dgm evaluate --real A --fake B`: two .npz files or PNG folders; the -digits metrics (dgm's digit classifier) by
default for 28x28 grey images, the Inception ones (fid, kid, ...) when named."""
import json

import numpy as np
import pytest

from dgm.cli import main


def blobs(n: int, seed: int, shift: int = 0) -> np.ndarray:
    """28x28 uint8 images: a bright square at a random place."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, (row, col) in enumerate(rng.integers(4, 16, size=(n, 2))):
        images[i, row + shift:row + shift + 8, col:col + 8] = 255
    return images


def test_real_fake_npz_files_with_the_digit_classifier(tmp_path, capsys):
    np.savez(tmp_path / "real.npz", images=blobs(40, 0))
    np.savez(tmp_path / "same.npz", images=blobs(40, 0).astype(np.float32)[:, None] / 255)  # (N, C, H, W) floats
    np.savez(tmp_path / "other.npz", images=np.random.default_rng(1).integers(0, 256, (40, 28, 28), np.uint8))
    assert main(["evaluate", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "same.npz"),
                 "--metrics", "fid-digits,kid-digits,is-digits,pr-digits,dc-digits"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["features"] == {"digits": "digits"} and same["n_real"] == same["n_fake"] == 40
    assert same["fid-digits"] == pytest.approx(0, abs=1e-6)
    assert same["precision-digits"] == same["coverage-digits"] == 1.0
    assert 1 <= same["is-digits"] <= 10 and "is-digits_std" in same and "kid-digits_std" in same
    assert main(["evaluate", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "other.npz")]) == 0
    other = json.loads(capsys.readouterr().out)  # the default: every -digits metric, no Inception
    assert set(other) == {"features", "n_real", "n_fake", "fid-digits", "kid-digits", "kid-digits_std",
                          "precision-digits", "recall-digits", "density-digits", "coverage-digits", "is-digits",
                          "is-digits_std"}
    assert other["fid-digits"] > 0.01 and other["kid-digits"] > 0


def test_fid_is_the_inception_distance_on_mnist_sized_images(tmp_path, capsys):
    """`--metrics fid` on 28x28 grey images is the FID of papers (Inception features); both spaces in one call."""
    np.savez(tmp_path / "real.npz", images=blobs(6, 0))
    np.savez(tmp_path / "fake.npz", images=blobs(6, 1, shift=4))
    assert main(["evaluate", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "fake.npz"),
                 "--metrics", "fid,fid-digits", "--resize", "clean"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["features"] == {"inception": "inception-tf-clean", "digits": "digits"}
    assert result["fid"] > 0 and result["fid-digits"] > 0 and result["fid"] != result["fid-digits"]


def test_png_folders(tmp_path, capsys):
    from PIL import Image
    for name, seed in (("real", 2), ("fake", 3)):
        (tmp_path / name).mkdir()
        for i, image in enumerate(blobs(12, seed)):
            Image.fromarray(image).save(tmp_path / name / f"{i:03d}.png")
    assert main(["evaluate", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--metrics", "fid-digits,pr-digits"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"features", "n_real", "n_fake", "fid-digits", "precision-digits", "recall-digits"}
    assert result["n_real"] == 12


@pytest.mark.parametrize("arguments, message", [
    (["--real", "a.npz"], "give a run folder, or --real and --fake"),
    (["--real", "missing.npz", "--fake", "missing.npz"], "does not exist"),
    (["--real", "a.txt", "--fake", "b.txt"], "folder of .png images or a .npz file"),
])
def test_bad_input(arguments, message, capsys):
    assert main(["evaluate", *arguments]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("metrics, message", [
    ("fid,bogus", "unknown metrics ['bogus']; choose from fid, kid, is, pr, dc, fid-digits, kid-digits, is-digits, "
                  "pr-digits, dc-digits, fid-raw, kid-raw, pr-raw, dc-raw, modes"),
    ("is", "needs Inception's classifier"),  # the TF-FID weights have none: --inception-weights
    ("nll", "two image sets have none"),
    ("fid-raw", "-raw metrics"),
])
def test_bad_metrics(tmp_path, capsys, metrics, message):
    np.savez(tmp_path / "a.npz", images=blobs(5, 0))
    assert main(["evaluate", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "a.npz"),
                 "--metrics", metrics]) == 2
    assert message in capsys.readouterr().err


def test_inception_options_need_an_inception_metric(tmp_path, capsys):
    """The default metrics of 28x28 grey images are the -digits ones: Inception weights would go unused."""
    np.savez(tmp_path / "a.npz", images=blobs(5, 0))
    assert main(["evaluate", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "a.npz"),
                 "--inception-weights", str(tmp_path / "pt_inception.pth")]) == 2
    assert "apply to the Inception metrics" in capsys.readouterr().err


def test_help_names_every_metric(capsys, monkeypatch):
    from dgm.metrics.quality import METRICS
    monkeypatch.setenv("COLUMNS", "10000")  # no line breaks (argparse breaks lines after hyphens)
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for name in METRICS:
        assert name in text, name
    assert "--features" not in text  # the names carry the features: one way to choose them


@pytest.mark.filterwarnings("ignore:The number of training batches")
def test_run_metrics_carry_their_feature_space(tmp_path, capsys):
    """`dgm evaluate RUN`: the default on 2D points is the -raw metrics and modes; metrics.json holds them under
    their names; an Inception metric on points is refused before the NLL is computed."""
    run = tmp_path / "gaussians"
    assert main(["train", "--model", "realnvp", "--data", "8gaussians-hw5", "--data-arg", "n_train=256",
                 "--data-arg", "n_test=300", "--model-arg", "n_layers=2", "--model-arg", "hidden=[8]",
                 "--max-steps", "2", "--batch-size", "128", "--out", str(run), "--no-progress", "--no-evaluate",
                 "--no-pictures"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "-n", "300"]) == 0
    quality = json.loads((run / "metrics.json").read_text())["sample_quality"]
    assert quality["features"] == {"raw": "raw"} and quality["modes"] == 8
    assert {"fid-raw", "kid-raw", "kid-raw_std", "precision-raw", "recall-raw", "density-raw",
            "coverage-raw", "modes_covered"} <= set(quality)
    assert json.loads(capsys.readouterr().out)["sample_quality"] == quality
    assert main(["evaluate", str(run), "--metrics", "nll,fid-raw", "-n", "300"]) == 0
    assert set(json.loads(capsys.readouterr().out)["sample_quality"]) == {"features", "n_real", "n_fake", "fid-raw"}
    assert main(["evaluate", str(run), "--metrics", "nll"]) == 0
    assert "sample_quality" not in json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(run), "--metrics", "fid"]) == 2
    assert "use the -raw metrics" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--resize", "clean"]) == 2  # no Inception metric to resize for
    assert "none was asked for" in capsys.readouterr().err
