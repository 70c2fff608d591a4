"""The discretized logistic mixture: normalisation over every value, sampling frequencies, stability at extremes."""
import itertools
import math

import pytest
import torch
from scipy.stats import chisquare

from dgm.distributions.logistic_mixture import DiscretizedLogisticMixture, log_bin_probability


def random_params(mixture, batch, spread=3.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, mixture.param_channels, generator=generator, dtype=torch.float64) * spread


def all_values(channels, levels):
    """Every pixel of ``channels`` channels with ``levels`` values, shape ``(levels^C, C)``."""
    return torch.tensor(list(itertools.product(range(levels), repeat=channels)), dtype=torch.float64)


def every_log_probability(mixture, params):
    """``log P(x)`` of every value ``x`` of one pixel (in the order of :func:`all_values`) for each parameter row
    ``(B, P)``, shape ``(B, levels^C)``: each row repeated once per value, one pixel per example."""
    values = all_values(mixture.channels, mixture.levels)
    count = len(values)
    log_p = mixture.log_prob(params.repeat_interleave(count, dim=0), values.repeat(len(params), 1))
    return log_p.view(len(params), count)


def total_log_probability(mixture, params):
    """``log Σ_x P(x)`` for each parameter row ``(B, P)``, summing over every value of one pixel."""
    return torch.logsumexp(every_log_probability(mixture, params), dim=-1)


@pytest.mark.parametrize("levels", [2, 16, 256])
def test_grey_probabilities_sum_to_one(levels):
    mixture = DiscretizedLogisticMixture(channels=1, levels=levels, components=5)
    params = random_params(mixture, batch=64)
    assert torch.allclose(total_log_probability(mixture, params).exp(), torch.ones(64, dtype=torch.float64),
                          atol=1e-5)


@pytest.mark.parametrize("levels", [2, 4])
def test_colour_joint_sums_to_one(levels):
    mixture = DiscretizedLogisticMixture(channels=3, levels=levels, components=3)
    params = random_params(mixture, batch=32)
    assert torch.allclose(total_log_probability(mixture, params).exp(), torch.ones(32, dtype=torch.float64),
                          atol=1e-5)


def test_extreme_parameters_stay_finite_and_normalised():
    mixture = DiscretizedLogisticMixture(channels=1, levels=256, components=2)
    # means far outside [-1, 1], the smallest scale, and a very broad one
    params = torch.tensor([[0.0, 0.0, 40.0, -40.0, -20.0, -20.0],
                           [0.0, 0.0, 0.3, -0.3, -20.0, 8.0]], dtype=torch.float64, requires_grad=True)
    total = total_log_probability(mixture, params)
    assert torch.allclose(total.exp(), torch.ones(2, dtype=torch.float64), atol=1e-5)
    log_p = every_log_probability(mixture, params)
    assert torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert torch.isfinite(params.grad).all()


def test_edge_bins_reach_to_infinity():
    """P(0) = σ((x̃_0 + h − μ)/s) and P(L−1) = 1 − σ((x̃_{L−1} − h − μ)/s): the lecture's edge cases."""
    levels, mean, log_scale = 256, torch.tensor(0.2, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64)
    h, s = 1 / (levels - 1), math.exp(-2.0)
    bottom = log_bin_probability(torch.tensor(0.0, dtype=torch.float64), mean, log_scale, levels).exp()
    top = log_bin_probability(torch.tensor(255.0, dtype=torch.float64), mean, log_scale, levels).exp()
    assert bottom.item() == pytest.approx(1 / (1 + math.exp(-(-1 + h - 0.2) / s)), rel=1e-12)
    assert top.item() == pytest.approx(1 - 1 / (1 + math.exp(-(1 - h - 0.2) / s)), rel=1e-12)


def test_agrees_with_cdf_difference_and_with_midpoint_for_small_bins():
    levels = 256
    x = torch.arange(1, levels - 1, dtype=torch.float64)
    mean, log_scale = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    h = 1 / (levels - 1)
    centre = 2 * h * x - 1
    direct = torch.sigmoid(centre + h - mean) - torch.sigmoid(centre - h - mean)
    ours = log_bin_probability(x, mean, log_scale, levels)
    assert torch.allclose(ours.exp(), direct, rtol=1e-10)
    z = centre - mean  # s = 1: logistic log-density -z - 2 softplus(-z), times the bin width 2h
    midpoint = -z - 2 * torch.nn.functional.softplus(-z) + math.log(2 * h)
    assert torch.allclose(ours, midpoint, atol=1e-5)


def test_bad_parameter_shape_is_refused():
    mixture = DiscretizedLogisticMixture(channels=3, levels=256, components=5)
    with pytest.raises(ValueError, match="50"):
        mixture.log_prob(torch.zeros(2, 30, 4, 4), torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("channels, levels", [(1, 16), (3, 4)])
def test_sampling_frequencies_match_probabilities(channels, levels):
    torch.manual_seed(0)
    mixture = DiscretizedLogisticMixture(channels=channels, levels=levels, components=3)
    params = random_params(mixture, batch=1, spread=1.0, seed=1)
    n = 40000
    draws = mixture.sample(params.unsqueeze(-1).expand(-1, -1, n))[0]  # (C, n)
    cells = sum(draws[c].long() * levels ** (channels - 1 - c) for c in range(channels))
    observed = torch.bincount(cells, minlength=levels ** channels).double()
    expected = total_probabilities(mixture, params) * n
    keep = expected > 5
    statistic = chisquare(observed[keep].numpy(), expected[keep].numpy() * observed[keep].sum().item()
                          / expected[keep].sum().item())
    assert statistic.pvalue > 1e-3
    assert observed[~keep].sum() < 5 * max(1, (~keep).sum().item())


def total_probabilities(mixture, params):
    """Probability of every value of one pixel, in the order of :func:`all_values`, for one parameter row."""
    return every_log_probability(mixture, params).exp()[0]


def test_colour_channels_depend_only_on_earlier_channels():
    """Summing the joint over B (then G) leaves the mixture of R alone (then of R and G given R): R never sees G or
    B, and G never sees B (§2.2's ordering)."""
    levels = 4
    mixture = DiscretizedLogisticMixture(channels=3, levels=levels, components=3)
    params = random_params(mixture, batch=1, spread=1.0, seed=2)
    joint = total_probabilities(mixture, params).view(levels, levels, levels)  # (r, g, b)
    logits, means, log_scales, coefficients = (t[0] for t in mixture.split(params))  # (K,), (C, K), (C, K), (3, K)
    weights = torch.softmax(logits, dim=0)
    values = torch.arange(levels, dtype=torch.float64)
    red = log_bin_probability(values[:, None], means[0], log_scales[0], levels).exp()  # (r, K)
    green_mean = means[1] + coefficients[0] * (2 * values[:, None] / (levels - 1) - 1)  # (r, K)
    green = log_bin_probability(values[None, :, None], green_mean[:, None], log_scales[1], levels).exp()  # (r, g, K)
    torch.testing.assert_close(joint.sum(dim=(1, 2)), red @ weights)
    torch.testing.assert_close(joint.sum(dim=2), (red[:, None] * green) @ weights)
