"""Discrete tables of seminars 1 and 2: exact probability tables, entropies, and samples that follow them."""
import math

import pytest
import torch

from dgm.data.base import load
from dgm.data.tables import DiscreteTable, generate_1d_data, histogram_1d, image_density


def chi_square_fits(counts: torch.Tensor, probabilities: torch.Tensor) -> bool:
    """Pearson's test: cells expecting 5 or more, the rest pooled; the statistic within 4 std of its mean."""
    expected = counts.sum() * probabilities.reshape(-1).double()
    observed = counts.reshape(-1).double()
    rich = expected >= 5
    expected = torch.cat([expected[rich], expected[~rich].sum().reshape(1)])
    observed = torch.cat([observed[rich], observed[~rich].sum().reshape(1)])
    statistic = ((observed - expected) ** 2 / expected.clamp_min(1e-12)).sum().item()
    degrees = len(expected) - 1
    return statistic < degrees + 4 * math.sqrt(2 * degrees)


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def mixture_cdf(y: float) -> float:
    return 0.5 * normal_cdf((y - 0.2) / 0.05) + 0.5 * normal_cdf((y - 0.6) / 0.15)


# -- seminar 1 --------------------------------------------------------------------------------------------------------
def test_histogram_1d_reproduces_the_seminars_draws():
    data = load("histogram-1d")
    assert data.train.shape == (4000, 1) and data.test.shape == (1000, 1) and data.levels == 100
    # the first values of the seminar's generate_1d_data(5000, 100) with np.random.seed(42), train then test
    assert data.train[:12, 0].tolist() == [22, 19, 23, 27, 70, 18, 27, 66, 17, 57, 83, 17]
    assert data.test[:6, 0].tolist() == [70, 19, 66, 22, 57, 42]
    assert torch.equal(generate_1d_data(5000, 100, seed=42), torch.cat([data.train, data.test]))


def test_histogram_1d_table_is_the_binned_mixture():
    p = histogram_1d(100).probabilities()
    assert p.shape == (100,) and p.sum().item() == pytest.approx(1.0, abs=1e-12)
    # trunc(99 y): value 0 takes y < 1/99, value k takes [k, k+1)/99, value 99 takes y >= 1
    assert p[0].item() == pytest.approx(mixture_cdf(1 / 99), abs=1e-12)
    for k in (1, 20, 59, 98):
        assert p[k].item() == pytest.approx(mixture_cdf((k + 1) / 99) - mixture_cdf(k / 99), abs=1e-12)
    assert p[99].item() == pytest.approx(1 - mixture_cdf(1.0), abs=1e-12)


def test_histogram_1d_entropy_and_frequencies():
    table = histogram_1d(100)
    p = table.probabilities()
    assert table.entropy() == pytest.approx(-(p * p.log()).sum().item(), abs=1e-12)
    assert table.entropy() == pytest.approx(4.1930, abs=1e-4)
    counts = torch.bincount(generate_1d_data(5000, 100, seed=42)[:, 0].long(), minlength=100)
    assert chi_square_fits(counts, p)
    assert not chi_square_fits(counts, p.roll(1))   # the test notices a table off by one value


# -- seminar 2 --------------------------------------------------------------------------------------------------------
def test_image_density_table():
    table = image_density()
    p = table.probabilities()
    assert p.shape == (60, 60) and (p > 0).all()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert table.entropy() == pytest.approx(-(p * p.log()).sum().item(), abs=1e-12)
    assert table.entropy() / 2 == pytest.approx(3.7528, abs=1e-4)   # nats per dimension, below the seminar's 4.0
    # the sky (top right) is light, the pagoda's dark eaves (rows 40..45, left) hold far more mass
    assert p[:5, 45:].sum() < 0.005 and p[40:46, :30].sum() > 0.05


def test_image_density_samples_follow_the_table():
    data = load("image-density-60")
    assert data.train.shape == (16000, 2) and data.test.shape == (4000, 2) and data.levels == 60
    assert data.train.dtype == torch.float32 and data.train.min() >= 0 and data.train.max() <= 59
    outcomes = torch.cat([data.train, data.test]).long()
    p = data.distribution.probabilities()
    counts = torch.bincount(outcomes[:, 0] * 60 + outcomes[:, 1], minlength=3600).reshape(60, 60)
    assert chi_square_fits(counts, p)
    assert chi_square_fits(counts.sum(1), p.sum(1)) and chi_square_fits(counts.sum(0), p.sum(0))
    assert not chi_square_fits(counts.sum(1), p.sum(0))   # rows and columns are not interchangeable


def test_seeds_reproduce_and_differ():
    first, again = load("image-density-60", seed=3), load("image-density-60", seed=3)
    assert torch.equal(first.train, again.train) and torch.equal(first.test, again.test)
    assert not torch.equal(first.train, load("image-density-60", seed=4).train)
    assert not torch.equal(load("histogram-1d", seed=1).train, load("histogram-1d").train)


# -- the table class --------------------------------------------------------------------------------------------------
def test_discrete_table_log_prob_and_sampling():
    table = DiscreteTable(torch.tensor([[0.5, 0.0], [0.125, 0.375]], dtype=torch.float64))
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(table.log_prob(x), torch.tensor([math.log(0.5), -math.inf, math.log(0.125), math.log(0.375)]))
    assert table.entropy() == pytest.approx(-(0.5 * math.log(0.5) + 0.125 * math.log(0.125) + 0.375 * math.log(0.375)))
    samples = table.sample(4000, torch.Generator().manual_seed(0))
    assert samples.shape == (4000, 2) and torch.equal(samples, samples.round())
    assert torch.isfinite(table.log_prob(samples)).all()   # never the cell of probability 0
    counts = torch.bincount((samples[:, 0] * 2 + samples[:, 1]).long(), minlength=4)
    assert chi_square_fits(counts, table.probabilities())


def test_bad_input_is_refused_with_value_error():
    with pytest.raises(ValueError, match="sum to 1"):
        DiscreteTable(torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="non-negative"):
        DiscreteTable(torch.tensor([1.5, -0.5]))
    table = DiscreteTable(torch.full((3, 2), 1 / 6))
    with pytest.raises(ValueError, match="below the table's shape"):
        table.log_prob(torch.tensor([[2.0, 2.0]]))
    with pytest.raises(ValueError, match="integer"):
        table.log_prob(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="bins"):
        histogram_1d(1)
    with pytest.raises(ValueError, match="number of samples"):
        table.sample(0)
