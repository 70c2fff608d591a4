"""Elementwise transforms, couplings of any shape and permutations: exact inverses and true log-determinants."""
import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from dgm.flows import (Additive, Affine, Coupling, Permutation, RationalQuadraticSpline, alternating_mask,
                       mlp_coupling, random_half_mask)
from dgm.flows.transforms import elementwise_transform

TRANSFORMS = {
    "additive": Additive,
    "affine": lambda: Affine(max_log_scale=1.5),
    "spline": lambda: RationalQuadraticSpline(bins=5, bound=2.0),
    "spline-one-bin": lambda: RationalQuadraticSpline(bins=1, bound=1.0),
}


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_params(transform, shape, seed=1, std=2.0) -> torch.Tensor:
    return std * torch.randn(shape[0], transform.params_per_element, *shape[1:], generator=generator(seed),
                             dtype=torch.float64)


def points(shape, seed=0, scale=2.0) -> torch.Tensor:
    """Normal points wide enough that a quarter of them fall in the spline tails."""
    return scale * torch.randn(*shape, generator=generator(seed), dtype=torch.float64)


# -- elementwise transforms --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("shape", [(7,), (5, 3), (2, 3, 4, 2)])
def test_transform_inverse_undoes_forward_and_log_derivatives_cancel(name, shape):
    transform = TRANSFORMS[name]()
    x, params = points(shape), random_params(transform, shape)
    y, forward_log_derivative = transform(x, params)
    x_again, inverse_log_derivative = transform.inverse(y, params)
    assert y.shape == forward_log_derivative.shape == x.shape
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(forward_log_derivative + inverse_log_derivative, torch.zeros_like(x), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_log_derivative_is_the_autograd_derivative(name):
    transform = TRANSFORMS[name]()
    x, params = points((64, 3)), random_params(transform, (64, 3))
    y, log_derivative = transform(x, params)
    torch.testing.assert_close(log_derivative, torch.log(_elementwise_derivative(transform, x, params)), atol=1e-6,
                               rtol=0)
    inverse_derivative = _elementwise_derivative(lambda v, p: transform.inverse(v, p), y, params)
    torch.testing.assert_close(transform.inverse(y, params)[1], torch.log(inverse_derivative), atol=1e-6, rtol=0)


def _elementwise_derivative(function, x, params) -> torch.Tensor:
    """``dτ(x_i)/dx_i`` for every element; the map is elementwise, so the gradient of the sum holds them all."""
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(function(x, params)[0].sum(), x)[0]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_zero_parameters_give_the_identity(name):
    transform = TRANSFORMS[name]()
    x = points((10, 4))
    y, log_derivative = transform(x, torch.zeros(10, transform.params_per_element, 4, dtype=torch.float64))
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(log_derivative, torch.zeros_like(x), atol=1e-12, rtol=0)


def test_spline_is_monotone_continuous_and_the_identity_in_its_tails():
    spline = RationalQuadraticSpline(bins=6, bound=2.0)
    x = torch.linspace(-4, 4, 8001, dtype=torch.float64)[:, None]
    params = random_params(spline, (1, 1), seed=3, std=3.0).expand(len(x), -1, -1)
    y, log_derivative = spline(x, params)
    steps = y.diff(dim=0)
    assert (steps > 0).all()
    assert steps.max() < 1e-3 * math.exp(log_derivative.max()) * 1.01  # no jump anywhere, knots included
    tails = x.abs() > 2
    torch.testing.assert_close(y[tails], x[tails], atol=0, rtol=0)
    assert (log_derivative[tails] == 0).all()
    inside = x.abs() < 2
    assert (y[inside].abs() <= 2).all() and (log_derivative[inside].abs() > 1e-3).any()


def test_affine_log_scale_is_soft_clamped():
    affine = Affine(max_log_scale=0.7)
    params = torch.stack([torch.tensor([-100.0, 0.01, 100.0]), torch.zeros(3)])[None]
    _, log_derivative = affine(torch.ones(1, 3), params)
    torch.testing.assert_close(log_derivative[0], torch.tensor([-0.7, 0.01, 0.7]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("arguments, message", [
    ({"bins": 0}, "bins must be a positive integer"),
    ({"bound": -1.0}, "bound must be positive"),
    ({"bins": 4, "min_bin": 0.3}, "min_bin must lie in"),
    ({"min_derivative": 1.0}, "min_derivative must lie in"),
])
def test_spline_rejects_bad_options(arguments, message):
    with pytest.raises(ValueError, match=message):
        RationalQuadraticSpline(**arguments)


def test_transforms_are_chosen_by_name():
    assert isinstance(elementwise_transform("additive"), Additive)
    assert elementwise_transform("affine", max_log_scale=3.0).max_log_scale == 3.0
    assert elementwise_transform("spline", bins=4).params_per_element == 11
    with pytest.raises(ValueError, match="transform must be one of additive, affine, spline"):
        elementwise_transform("cubic")
    with pytest.raises(ValueError, match="max_log_scale must be positive"):
        Affine(0.0)


# -- couplings of any shape --------------------------------------------------------------------------------------------
class LinearConditioner(nn.Module):
    """A dense conditioner for examples of any shape: flatten, one tanh layer, a linear map to ``(k·C, *rest)``."""

    def __init__(self, shape, k, seed):
        super().__init__()
        size = math.prod(shape)
        self.out_shape = (k * shape[0], *shape[1:])
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(size, 16), nn.Tanh(), nn.Linear(16, k * size))
        with torch.no_grad():
            for parameter in self.net.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator(seed)))

    def forward(self, x):
        return self.net(x).view(len(x), *self.out_shape)


COUPLING_SHAPES = [(2,), (5,), (2, 3, 3)]


def coupling(shape, transform_name, seed=0) -> Coupling:
    transform = TRANSFORMS[transform_name]()
    mask = (torch.rand(shape, generator=generator(seed + 100)) < 0.5).float()
    mask.view(-1)[:2] = torch.tensor([1.0, 0.0])  # at least one kept and one transformed element
    return Coupling(mask, LinearConditioner(shape, transform.params_per_element, seed), transform).double()


def autograd_log_abs_det(function, x: torch.Tensor) -> torch.Tensor:
    """``log|det ∂function/∂x|`` of each example from the full (flattened) autograd Jacobian."""
    def flat(v):
        return function(v.view(1, *x.shape[1:]))[0].flatten()
    return torch.stack([torch.linalg.slogdet(jacobian(flat, example.flatten()))[1] for example in x])


@pytest.mark.parametrize("transform_name", ["additive", "affine", "spline"])
@pytest.mark.parametrize("shape", COUPLING_SHAPES)
def test_coupling_inverts_and_its_log_det_is_that_of_the_autograd_jacobian(shape, transform_name):
    layer = coupling(shape, transform_name)
    x = points((4, *shape), seed=5, scale=1.5)
    y, log_abs_det = layer(x)
    x_again, inverse_log_abs_det = layer.inverse(y)
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_abs_det + inverse_log_abs_det, torch.zeros(4, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    kept = layer.mask.bool().expand_as(x)
    torch.testing.assert_close(y[kept], x[kept], atol=0, rtol=0)
    assert not torch.allclose(y[~kept], x[~kept], atol=1e-2)
    torch.testing.assert_close(log_abs_det, autograd_log_abs_det(layer, x), atol=1e-6, rtol=0)
    torch.testing.assert_close(inverse_log_abs_det, autograd_log_abs_det(layer.inverse, y), atol=1e-6, rtol=0)


def test_mlp_coupling_starts_as_the_identity():
    layer = mlp_coupling(alternating_mask(4, 0), [8], RationalQuadraticSpline(bins=4)).double()
    x = points((6, 4))
    y, log_abs_det = layer(x)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(log_abs_det, torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)


def test_coupling_names_the_conditioner_output_shape_it_expects():
    layer = Coupling(torch.tensor([1.0, 0.0, 1.0]), nn.Linear(3, 3), Affine())
    with pytest.raises(ValueError, match=r"conditioner must output shape \(2, 6\)"):
        layer(torch.zeros(2, 3))


# -- masks and permutations --------------------------------------------------------------------------------------------
def test_vector_masks():
    assert alternating_mask(5, 0).tolist() == [1, 0, 1, 0, 1]
    assert alternating_mask(5, 1).tolist() == [0, 1, 0, 1, 0]
    mask = random_half_mask(7, seed=3)
    assert mask.sum() == 3 and torch.equal(mask, random_half_mask(7, seed=3))
    assert not torch.equal(mask, random_half_mask(7, seed=4)) or not torch.equal(mask, random_half_mask(7, seed=5))
    with pytest.raises(ValueError, match="dim must be an integer of at least 2"):
        alternating_mask(1, 0)


def test_permutations_reorder_and_invert_with_zero_log_det():
    x = points((3, 6))
    reverse = Permutation.reverse(6)
    z, log_abs_det = reverse(x)
    torch.testing.assert_close(z, x.flip(1), atol=0, rtol=0)
    assert (log_abs_det == 0).all()
    shuffle = Permutation.random(6, seed=1)
    assert sorted(shuffle.order.tolist()) == list(range(6)) and shuffle.order.tolist() != list(range(6))
    z, _ = shuffle(x)
    x_again, inverse_log_abs_det = shuffle.inverse(z)
    torch.testing.assert_close(x_again, x, atol=0, rtol=0)
    assert (inverse_log_abs_det == 0).all()
    with pytest.raises(ValueError, match="order must be a permutation"):
        Permutation(torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"vectors of shape \(N, 6\)"):
        shuffle(torch.zeros(2, 5))
