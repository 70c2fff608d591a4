"""Dequantization: the course's values, and bounds that hold on a discrete space small enough to integrate exactly."""
import math

import numpy as np
import pytest
import torch

from dgm.data.transforms import dequantize_course
from dgm.flows.actnorm import ActNorm
from dgm.flows.bijection import Compose
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


def test_an_unknown_dequantization_is_refused():
    with pytest.raises(ValueError, match="'uniform' or 'variational'"):
        make_dequantizer("gaussian", SHAPE)


def test_log_prob_rejects_a_bad_number_of_samples():
    with pytest.raises(ValueError, match="samples must be an integer of at least 1"):
        tiny_model("uniform").log_prob(ALL_IMAGES, samples=0)
