"""The histogram: normalisation, the closed-form maximum-likelihood estimate, sampling and input checks."""
import math

import pytest
import torch
from scipy import stats

from dgm.models.autoregressive.histogram import Histogram


def random_histogram(shape=(2,), levels=4, seed=0) -> Histogram:
    torch.manual_seed(seed)
    model = Histogram(shape, levels)
    with torch.no_grad():
        model.logits.copy_(2 * torch.randn_like(model.logits))
    return model


def skewed_data(n: int = 2000) -> torch.Tensor:
    """Pairs on 4 levels covering all 16 cells with unequal frequencies."""
    torch.manual_seed(1)
    weights = torch.arange(1.0, 17.0)
    cells = torch.multinomial(weights, n, replacement=True)
    return torch.stack([cells // 4, cells % 4], dim=1).float()


def empirical_frequencies(x: torch.Tensor, levels: int = 4) -> torch.Tensor:
    cells = (x[:, 0] * levels + x[:, 1]).long()
    return torch.bincount(cells, minlength=levels**2).double() / len(x)


def test_table_is_normalised_and_indexed_row_major():
    model = random_histogram(shape=(1, 3), levels=3)
    table = model.probabilities()
    assert table.shape == (3, 3, 3)
    torch.testing.assert_close(table.sum(), torch.tensor(1.0))
    x = torch.tensor([[[0.0, 1.0, 2.0]], [[2.0, 0.0, 1.0]]])
    torch.testing.assert_close(model.log_prob(x), table[[0, 2], [1, 0], [2, 1]].log())


def test_gradient_is_model_minus_empirical_frequencies_and_vanishes_at_the_mle():
    """∂ mean NLL / ∂θ = softmax(θ) − p̂, so θ = log p̂ is the maximum-likelihood estimate."""
    x = skewed_data()
    frequencies = empirical_frequencies(x)
    model = random_histogram(levels=4).double()
    model.loss(x.double())["loss"].backward()
    torch.testing.assert_close(model.logits.grad, torch.softmax(model.logits, 0).detach() - frequencies)

    model.logits.grad = None
    with torch.no_grad():
        model.logits.copy_(frequencies.log())
    nll = model.loss(x.double())["loss"]
    nll.backward()
    assert model.logits.grad.abs().max() < 1e-12
    entropy = -(frequencies * frequencies.log()).sum()
    torch.testing.assert_close(nll.detach(), entropy)


def test_adam_training_reaches_the_empirical_frequencies():
    x = skewed_data()
    model = Histogram((2,), 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        model.loss(x)["loss"].backward()
        optimizer.step()
    learned = model.probabilities().detach().double().flatten()
    assert (learned - empirical_frequencies(x)).abs().max() < 1e-4


def test_sample_frequencies_match_the_table():
    model = random_histogram(levels=4)
    torch.manual_seed(2)
    n = 20000
    samples = model.sample(n)
    assert samples.shape == (n, 2) and samples.dtype == torch.float32
    model.check(samples)
    counts = empirical_frequencies(samples) * n
    table = model.probabilities().detach().double().flatten()
    assert stats.chisquare(counts, n * table / table.sum()).pvalue > 1e-3
    assert stats.chisquare(counts).pvalue < 1e-3  # far from uniform, so the test has power


def test_sampling_follows_torch_global_seed():
    model = random_histogram(shape=(1, 2, 2), levels=2)
    torch.manual_seed(3)
    first = model.sample(50)
    torch.manual_seed(3)
    assert torch.equal(model.sample(50), first)
    assert first.shape == (50, 1, 2, 2)


def test_loss_reports_nats_per_example_and_bits_per_dimension():
    model = Histogram((3,), 4)
    losses = model.loss(torch.tensor([[0.0, 1.0, 3.0]]))
    torch.testing.assert_close(losses["loss"], torch.tensor(3 * math.log(4)))
    torch.testing.assert_close(losses["bpd"], torch.tensor(2.0))


def test_model_rebuilt_from_config():
    model = Histogram((2,), 5)
    assert model.config == {"shape": [2], "levels": 5}
    rebuilt = Histogram(**model.config)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.probabilities(), model.probabilities())


@pytest.mark.parametrize("shape, levels, match", [
    ((2,), None, "levels"),
    ((2,), 1, "levels"),
    ((), 4, "shape"),
    ((1, 28, 28), 2, "cells"),
    ((4,), 100, "cells"),
])
def test_bad_arguments_are_refused(shape, levels, match):
    with pytest.raises(ValueError, match=match):
        Histogram(shape, levels)


@pytest.mark.parametrize("x, match", [
    (torch.zeros(2, 3), "shape"),
    (torch.tensor([[float("nan"), 0.0]]), "NaN"),
    (torch.tensor([[4.0, 0.0]]), "0..3"),
    (torch.tensor([[1.5, 0.0]]), "fractions"),
    (torch.tensor([[1, 0]]), "floating-point"),
])
def test_bad_data_is_refused(x, match):
    with pytest.raises(ValueError, match=match):
        Histogram((2,), 4).log_prob(x)


def test_sample_count_must_be_positive():
    with pytest.raises(ValueError, match="number of samples must be an integer of at least 1"):
        Histogram((2,), 4).sample(0)
