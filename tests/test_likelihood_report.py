"""The test-NLL summary of a run (dgm.metrics.likelihood.nll_summary): the mean beside the median and the worst
example, and a warning when heavy-tailed per-example values make the mean untrustworthy; tested on synthetic
per-example values."""
import math

import pytest
import torch

import dgm
from dgm.data import load
from dgm.metrics.likelihood import heavy_tail_warning, nll_label, nll_summary, robust_stderr
from dgm.runs import evaluate_run
from dgm.training import fit

N = 10_000


def _nll(sample: torch.Tensor, offset: float = 800.0) -> torch.Tensor:
    """Per-example NLLs around ``offset`` nats (a typical MNIST flow) with the given fluctuations."""
    return offset + 100.0 * sample.double()


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_robust_stderr_is_the_ordinary_standard_error_for_normal_values(generator):
    values = torch.randn(N, generator=generator, dtype=torch.float64)
    assert robust_stderr(values) == pytest.approx(values.std().item() / math.sqrt(N), rel=0.05)


@pytest.mark.parametrize("law", ["normal", "exponential", "laplace", "student-t3", "log-normal"])
def test_light_and_moderately_heavy_tails_are_not_flagged(generator, law):
    normal = torch.randn(N, generator=generator, dtype=torch.float64)
    uniform = torch.rand(N, generator=generator, dtype=torch.float64)
    sample = {"normal": normal, "exponential": -torch.log1p(-uniform),
              "laplace": torch.sign(uniform - 0.5) * torch.log1p(-2 * (uniform - 0.5).abs()),
              "student-t3": normal / torch.sqrt(torch.randn(N, 3, generator=generator, dtype=torch.float64)
                                                .pow(2).sum(1) / 3),
              "log-normal": torch.exp(normal)}[law]
    summary = nll_summary(-_nll(sample), dim=784, likelihood="lower_bound")
    assert summary["heavy_tailed"] is False and "warning" not in summary


def test_one_exploding_example_is_flagged_and_named(generator):
    """The failure of the Glow run: one test image among 10 000 at 2.3e7 nats, the others near 800."""
    nll = _nll(torch.randn(N, generator=generator))
    nll[9127] = 2.3e7
    summary = nll_summary(-nll, dim=784, likelihood="lower_bound")
    assert summary["heavy_tailed"] is True
    assert summary["worst_example"] == 9127 and summary["worst_nll_nats"] == pytest.approx(2.3e7)
    assert summary["nll_median_nats"] == pytest.approx(800, abs=5)
    assert summary["nll_nats"] > 3000  # the mean is reported as it is, not hidden
    assert "#9127" in summary["warning"] and "median" in summary["warning"]
    assert "\nwarning: heavy-tailed" in nll_label(summary)


def test_a_single_outlier_that_moves_the_mean_by_more_than_three_standard_errors_is_flagged(generator):
    """200 robust standard deviations out: the standard error grows only by √5 ≈ 2.2, but leaving the example out
    lowers the mean by 0.02 σ, four of the bulk's standard errors (σ / 100)."""
    nll = _nll(torch.randn(N, generator=generator))
    nll[0] = 800.0 + 400 * 100.0
    assert "the worst example alone" in heavy_tail_warning(nll)


def test_many_moderate_outliers_that_inflate_the_standard_error_are_flagged(generator):
    nll = _nll(torch.randn(N, generator=generator))
    nll[:100] += 50 * 100.0  # 1% of the examples 50 σ out: none dominates, together they set the error bar
    warning = heavy_tail_warning(nll)
    assert "the standard error" in warning and "the worst example alone" not in warning


def test_non_finite_values_are_flagged():
    nll = torch.full((10,), 800.0, dtype=torch.float64)
    nll[3] = math.inf
    assert heavy_tail_warning(nll) == "1 of 10 per-example NLLs are not finite"


def test_ties_and_a_single_example_give_no_verdict():
    assert heavy_tail_warning(torch.tensor([1.0] * 8 + [2.0, 3.0], dtype=torch.float64)) is None
    assert heavy_tail_warning(torch.tensor([5.0], dtype=torch.float64)) is None


def test_the_label_names_median_and_worst_example_beside_the_mean():
    summary = nll_summary(-torch.tensor([1.0, 2.0, 3.0, 10.0]), dim=2, likelihood="exact")
    assert nll_label(summary).startswith("NLL = 4 nats (2.885 bits/dim), median 2 nats, worst 10 nats (test "
                                         "example #3)")
    assert nll_label({"nll_nats": 1.0, "bits_per_dim": 0.7, "likelihood": "exact"}) == \
        "NLL = 1 nats (0.7 bits/dim)"
    assert nll_label(summary | {"validation_loss": 3.9}).endswith("; last validation loss 3.9")


def test_a_run_reports_median_worst_example_and_the_end_of_its_validation_curve(tmp_path):
    """``evaluate_run`` writes the summary beside the last epoch-end test loss of the training logs, the same
    number as the validation curve's end for a flow (exact likelihood, the same test set)."""
    data = load("moons-raw", n_train=512, n_test=256)
    model = dgm.create("realnvp", data=data, n_layers=2, hidden=[8])
    run = fit(model, data, tmp_path / "flow", max_epochs=2, batch_size=128, progress=False)
    metrics = evaluate_run(run.directory)
    assert metrics["validation_loss"] == pytest.approx(metrics["nll_nats"], rel=1e-4)
    assert 0 <= metrics["worst_example"] < 256 and metrics["worst_nll_nats"] >= metrics["nll_median_nats"]
    assert isinstance(metrics["heavy_tailed"], bool)
