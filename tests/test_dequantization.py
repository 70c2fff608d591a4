"""Dequantization: the course's values, and bounds that hold on a discrete space small enough to integrate exactly."""
import math

import numpy as np
import pytest
import torch

from dgm.data.transforms import dequantize_course
from dgm.distributions.importance import importance_weighted_bound
from dgm.flows.actnorm import ActNorm
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.dequantization import (DequantizedFlow, LogitTransform, UniformDequantizer, VariationalDequantizer,
                                     make_dequantizer)
from dgm.flows.image_coupling import checkerboard_mask, resnet_coupling
from dgm.flows.transforms import Affine

COURSE_X = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(4, 1) / 256


# -- the course's homework 3 -----------------------------------------------------------------------------------------

def test_logit_transform_reproduces_the_course_values():
    z, log_det = LogitTransform(alpha=0.05)(COURSE_X)
    assert torch.allclose(z[:, 0], torch.tensor([-2.944439, -2.8727808, -2.8054335, -2.7418802]), atol=1e-6)
    assert torch.allclose(log_det, torch.tensor([2.9416652, 2.8774219, 2.8175175, 2.7614343]), atol=1e-6)
    x, inverse_log_det = LogitTransform(alpha=0.05).inverse(z)
    assert torch.allclose(x, COURSE_X, atol=1e-6)
    assert torch.allclose(inverse_log_det, -log_det, atol=1e-5)


def test_course_dequantize_stays_in_range_increasing_and_above_the_input():
    y = dequantize_course(COURSE_X, nbins=256, generator=torch.Generator().manual_seed(0))[:, 0]
    assert (y >= 0).all() and (y <= 4 / 256).all()
    assert (y[1:] > y[:-1]).all() and (y >= COURSE_X[:, 0]).all()


def test_logit_transform_rejects_alpha_outside_its_range():
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 0.5\)"):
        LogitTransform(alpha=0.5)


# -- bounds on a tiny discrete space ---------------------------------------------------------------------------------

SHAPE, LEVELS = (1, 1, 2), 3  # nine images of two pixels


class TinyDequantizedFlow(DequantizedFlow):
    """A logit transform, two checkerboard couplings and an ActNorm on two-pixel images of three levels."""

    def __init__(self, shape=SHAPE, levels: int = LEVELS, dequantization: str = "uniform"):
        layers = [resnet_coupling(checkerboard_mask(shape, k), Affine(), channels=8, blocks=0) for k in (0, 1)]
        dequantizer = (VariationalDequantizer(shape, couplings=2, channels=4, blocks=0)
                       if dequantization == "variational" else make_dequantizer(dequantization, shape))
        super().__init__(Compose(LogitTransform(0.05), *layers, ActNorm(shape[0])), dequantizer)


def tiny_model(dequantization: str) -> TinyDequantizedFlow:
    torch.manual_seed(0)
    model = TinyDequantizedFlow(dequantization=dequantization).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model


ALL_IMAGES = torch.cartesian_prod(torch.arange(LEVELS), torch.arange(LEVELS)).double().view(-1, *SHAPE)


@torch.no_grad()
def exact_log_probabilities(model: DequantizedFlow, nodes: int = 40) -> torch.Tensor:
    """``log ∫_cell(x) p(y) dy`` of every image by Gauss-Legendre quadrature on each two-dimensional cell."""
    points, weights = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(nodes))
    offsets = (points + 1) / 2  # nodes on [0, 1], weights summing to 2 -> halve them
    u = torch.cartesian_prod(offsets, offsets).view(-1, *SHAPE)
    weight = torch.outer(weights / 2, weights / 2).reshape(-1)
    y = (ALL_IMAGES[:, None] + u[None]) / LEVELS
    log_p = model.continuous_log_prob(y.reshape(-1, *SHAPE)).view(len(ALL_IMAGES), -1)
    return torch.logsumexp(log_p + weight.log(), dim=1) - 2 * math.log(LEVELS)


@torch.no_grad()
def mean_bound(model: DequantizedFlow, samples: int, draws: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of ``L_K`` (``K = samples``) of every image over ``draws / K`` repetitions, and its standard error."""
    repeats = draws // samples
    bounds = model.log_prob(ALL_IMAGES.repeat(repeats, 1, 1, 1), samples=samples).view(repeats, len(ALL_IMAGES))
    return bounds.mean(dim=0), bounds.std(dim=0) / math.sqrt(repeats)


@torch.no_grad()
def test_quadrature_mass_of_the_cells_is_the_chance_that_a_flow_sample_lands_in_the_unit_square():
    model = tiny_model("uniform")
    total = exact_log_probabilities(model).exp().sum()
    torch.manual_seed(2)
    y = model.flow.inverse(torch.randn(50_000, *SHAPE, dtype=torch.float64))[0]
    inside = ((y >= 0) & (y < 1)).flatten(1).all(dim=1).double().mean()
    assert 0.2 < total < 1.0
    assert abs(total - inside) < 4 * math.sqrt(inside * (1 - inside) / len(y))


@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_importance_weighted_bounds_rise_with_k_and_stay_below_the_exact_log_probability(dequantization):
    model = tiny_model(dequantization)
    exact = exact_log_probabilities(model)
    torch.manual_seed(1)
    gaps, errors = zip(*((exact - bound, error) for bound, error in (mean_bound(model, k) for k in (1, 8, 64))))
    for gap, error in zip(gaps, errors):
        assert (gap > -3 * error).all(), "a bound above the exact log-probability"
    assert (gaps[0] > 3 * errors[0]).all(), "Jensen's gap of a single draw should be clearly positive"
    mean_gaps = [gap.mean().item() for gap in gaps]
    assert mean_gaps[0] > mean_gaps[1] > mean_gaps[2]
    if dequantization == "uniform":  # p/q is bounded on each cell: L_K reaches log P(x) quickly
        assert mean_gaps[2] < 0.02


def test_the_bound_is_on_the_data_scale_a_continuous_log_density_minus_d_log_levels():
    model = tiny_model("uniform")
    torch.manual_seed(3)
    bound = model.log_prob(ALL_IMAGES)
    torch.manual_seed(3)
    y, log_q = UniformDequantizer()(ALL_IMAGES, LEVELS)
    assert torch.equal(log_q, torch.zeros(len(ALL_IMAGES), dtype=torch.float64))
    assert torch.allclose(bound, model.continuous_log_prob(y) - 2 * math.log(LEVELS))


def test_variational_dequantizer_reports_the_density_of_its_noise_in_the_cell():
    dequantizer = tiny_model("variational").dequantizer
    x = ALL_IMAGES[[1, 5]]
    noise = torch.randn(len(x), *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    offset, log_abs_det = dequantizer.noise_to_offset(noise, x, LEVELS)
    assert (offset > 0).all() and (offset < 1).all()
    for k in range(len(x)):
        def one(eps, k=k):
            return dequantizer.noise_to_offset(eps.view(1, *SHAPE), x[k:k + 1], LEVELS)[0].reshape(-1)
        expected = torch.linalg.slogdet(torch.autograd.functional.jacobian(one, noise[k].reshape(-1)))[1]
        assert torch.allclose(log_abs_det[k], expected, atol=1e-8)
    torch.manual_seed(4)
    y, log_q = dequantizer(x, LEVELS)
    torch.manual_seed(4)
    noise = torch.randn_like(x)
    offset, log_abs_det = dequantizer.noise_to_offset(noise, x, LEVELS)
    assert torch.allclose(y, (x + offset) / LEVELS)
    assert torch.allclose(log_q, -0.5 * (noise ** 2 + math.log(2 * math.pi)).flatten(1).sum(1) - log_abs_det)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_the_image_as_context_gives_the_map_of_the_image_kept_as_extra_channels():
    """The dequantizer's couplings of ``ε`` conditioned on the image compute the map of couplings of ``[ε, x̃]`` whose
    masks always keep ``x̃`` (how it was first written) once the latter's outputs for the kept ``x̃``, never used, are
    dropped: the conditioners see the same inputs, and the parameter count falls by those outputs only."""
    shape, channels = (2, 2, 2), 2
    torch.manual_seed(0)
    dequantizer = VariationalDequantizer(shape, couplings=2, channels=4, blocks=1).double()
    with torch.no_grad():
        for parameter in dequantizer.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    kept_image = torch.ones(shape)
    channels_flow = Compose(*(resnet_coupling(torch.cat([checkerboard_mask(shape, k % 2), kept_image]), Affine(),
                                              channels=4, blocks=1) for k in range(2))).double()
    noise_rows = (torch.arange(2)[:, None] * 2 * channels + torch.arange(channels)).flatten()  # of (k, 2C) outputs
    dropped = 0
    with torch.no_grad():
        for old, new in zip(channels_flow.parameters(), dequantizer.parameters()):
            if old.shape == new.shape:
                old.copy_(new)
            else:  # the last convolution of a conditioner
                old.zero_()[noise_rows] = new
                dropped += old.numel() - new.numel()
    assert parameter_count(dequantizer) == parameter_count(channels_flow) - dropped
    noise = torch.randn(4, *shape, dtype=torch.float64)
    image = torch.randint(0, LEVELS, (4, *shape)).double() / (LEVELS - 1) - 0.5
    old_values, old_log_abs_det = channels_flow(torch.cat([noise, image], dim=1))
    new_values, new_log_abs_det = dequantizer.flow(noise, context=image)
    torch.testing.assert_close(new_values, old_values[:, :channels], atol=1e-12, rtol=0)
    torch.testing.assert_close(new_log_abs_det, old_log_abs_det, atol=1e-12, rtol=0)
    assert not torch.allclose(new_values, noise, atol=1e-2)


def test_an_unknown_dequantization_is_refused():
    with pytest.raises(ValueError, match="'uniform' or 'variational'"):
        make_dequantizer("gaussian", SHAPE)


def test_log_prob_rejects_a_bad_number_of_samples():
    with pytest.raises(ValueError, match="samples must be an integer of at least 1"):
        tiny_model("uniform").log_prob(ALL_IMAGES, samples=0)


# -- the importance-weighted bound (shared with VAEs) on a Gaussian model with a closed-form likelihood ---------------
#
# u ~ N(0, 1) and x | u ~ N(u, 1), so p(x) = N(x; 0, 2) and p(u | x) = N(x/2, 1/2); the proposal q(u | x) = N(x/2 + 1,
# 1) misses the posterior, so that E[L_1] = log p(x) − KL(q ‖ p(u | x)) < log p(x).

OBSERVED = torch.tensor([-1.5, 0.3, 2.0], dtype=torch.float64)


def gaussian_log_density(value, mean, variance):
    return -0.5 * ((value - mean) ** 2 / variance + math.log(2 * math.pi * variance))


def gaussian_log_weights(shift: float, variance: float):
    """``log p(x, u) − log q(u|x)`` for one draw ``u ∼ q(·|x) = N(x/2 + shift, variance)`` per example."""
    def log_weights(x):
        mean = x / 2 + shift
        u = mean + math.sqrt(variance) * torch.randn_like(x)
        return gaussian_log_density(u, 0, 1) + gaussian_log_density(x, u, 1) - gaussian_log_density(u, mean, variance)
    return log_weights


def bound_draws(samples: int, draws: int = 4000, shift: float = 1.0, variance: float = 1.0) -> torch.Tensor:
    """``draws`` independent draws of the estimate of ``L_K`` (``K = samples``) of each observation, ``(draws, 3)``."""
    torch.manual_seed(samples)
    bounds = importance_weighted_bound(gaussian_log_weights(shift, variance), OBSERVED.repeat(draws), samples)
    return bounds.view(draws, len(OBSERVED))


def test_importance_weighted_bounds_rise_with_k_from_the_elbo_towards_the_exact_log_likelihood():
    exact = gaussian_log_density(OBSERVED, 0, 2)
    kl_to_posterior = 0.5 * (1 / 0.5 + 1 ** 2 / 0.5 - 1 + math.log(0.5))  # ½(σ_q²/σ² + Δ²/σ² − 1 + log σ²/σ_q²)
    means, errors = zip(*((draws.mean(0), draws.std(0) / math.sqrt(len(draws)))
                          for draws in (bound_draws(k) for k in (1, 4, 32))))
    torch.testing.assert_close(means[0], exact - kl_to_posterior, atol=4 * errors[0].max().item(), rtol=0)
    assert (means[0] + 4 * errors[0] < means[1] - 4 * errors[1]).all()
    assert (means[1] + 4 * errors[1] < means[2] - 4 * errors[2]).all()
    assert (means[2] + 4 * errors[2] < exact).all()


def test_the_spread_of_the_estimate_shrinks_as_k_grows():
    spreads = [bound_draws(k).std(dim=0) for k in (1, 4, 32)]
    assert (spreads[1] < 0.7 * spreads[0]).all() and (spreads[2] < 0.5 * spreads[1]).all()


def test_with_the_exact_posterior_as_proposal_every_bound_is_the_log_likelihood():
    for k in (1, 5):
        bounds = bound_draws(k, draws=10, shift=0.0, variance=0.5)
        torch.testing.assert_close(bounds, gaussian_log_density(OBSERVED, 0, 2).expand(10, 3), atol=1e-12, rtol=0)


def test_the_k_copies_go_through_log_weights_as_one_batch_sample_major():
    calls = []

    def row_numbers(batch):
        calls.append(len(batch))
        return torch.arange(len(batch), dtype=torch.float64)

    bound = importance_weighted_bound(row_numbers, OBSERVED, samples=4)
    assert calls == [12]
    rows = torch.arange(4)[:, None] * 3 + torch.arange(3)  # copy k of example n at row k·N + n
    torch.testing.assert_close(bound, torch.logsumexp(rows.double(), dim=0) - math.log(4), atol=1e-12, rtol=0)


class OverflowingTail(Bijection):
    """The identity, except that its inverse is NaN where the base draw's first entry exceeds ``threshold`` (1: about
    16% of draws), standing for a flow whose inverse overflows in the tail."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, x, context=None):
        return x, x.new_zeros(len(x))

    def inverse(self, z, context=None):
        tail = z.flatten(1)[:, :1] > self.threshold
        return torch.where(tail.view(-1, *[1] * (z.dim() - 1)), torch.nan, z), z.new_zeros(len(z))


def test_samples_whose_inverse_overflows_are_drawn_again_with_a_warning():
    model = tiny_model("uniform")
    layers = list(model.flow.bijections)
    model.flow = Compose(*layers, OverflowingTail(1.0))  # the last layer: the first of the inverse
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"^3[0-9]{2} of 2000 samples overflowed inside the inverse flow"):
        samples = model.sample(2000)
    assert torch.isfinite(samples).all() and samples.min() >= 0 and samples.max() <= LEVELS - 1
    model.flow = Compose(*layers, OverflowingTail(-math.inf))  # every draw overflows: refused
    with pytest.raises(FloatingPointError, match="still not finite after 10 redraws"):
        model.sample(10)
