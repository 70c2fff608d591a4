"""MAF and IAF layers: exact inverses, true log-determinants, triangular Jacobians, and the number of MADE passes."""
import pytest
import torch
from torch.autograd.functional import jacobian
from torch.nn.utils import vector_to_parameters

from dgm.flows import Affine, Permutation, RationalQuadraticSpline
from dgm.flows.autoregressive import InverseAutoregressive, MaskedAutoregressive, autoregressive_flow

LAYERS = {"maf": MaskedAutoregressive, "iaf": InverseAutoregressive}
TRANSFORMS = {"affine": lambda: Affine(max_log_scale=2.0), "spline": lambda: RationalQuadraticSpline(bins=4, bound=2.0)}


def randomized(module, seed=0, std=0.5):
    """``module`` in float64 with every parameter drawn from N(0, std²) (masks are buffers and stay)."""
    count = sum(p.numel() for p in module.parameters())
    vector_to_parameters(std * torch.randn(count, generator=torch.Generator().manual_seed(seed)), module.parameters())
    return module.double()


def layer(kind, transform, dim, order="natural", seed=0, hidden=(12, 12)):
    return randomized(LAYERS[kind](dim, hidden, TRANSFORMS[transform](), order=order, seed=seed), seed)


def points(batch, dim, seed=7):
    return 1.5 * torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def per_example_jacobian(function, x):
    return torch.stack([jacobian(lambda v: function(v[None])[0][0], example) for example in x])


CASES = [(kind, transform, dim, order) for kind in LAYERS for transform in TRANSFORMS
         for dim, order in [(1, "natural"), (2, "natural"), (5, "random")]]


@pytest.mark.parametrize("kind, transform, dim, order", CASES)
def test_inverse_undoes_forward_and_log_det_is_that_of_the_autograd_jacobian(kind, transform, dim, order):
    bijection = layer(kind, transform, dim, order)
    x = points(4, dim)
    z, log_abs_det = bijection(x)
    x_again, inverse_log_abs_det = bijection.inverse(z)
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_abs_det + inverse_log_abs_det, torch.zeros(4, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    assert not torch.allclose(z, x, atol=1e-2)
    for function, inputs, expected in [(bijection, x, log_abs_det), (bijection.inverse, z, inverse_log_abs_det)]:
        autograd = torch.linalg.slogdet(per_example_jacobian(function, inputs))[1]
        torch.testing.assert_close(expected, autograd, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_jacobian_is_triangular_in_the_made_ordering(kind, transform):
    bijection = layer(kind, transform, 5, order="random", seed=3, hidden=(32, 32))
    ordering = bijection.made.sampling_order  # dimension generated at each rank
    x = points(3, 5)
    for function, inputs in [(bijection, x), (bijection.inverse, bijection(x)[0])]:
        reordered = per_example_jacobian(function, inputs)[:, ordering][:, :, ordering]
        upper = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
        assert (reordered[:, upper] == 0).all()
        assert (reordered.diagonal(dim1=1, dim2=2) > 0).all()  # monotone in each coordinate
        strictly_lower = torch.tril(torch.ones(5, 5, dtype=torch.bool), diagonal=-1)
        assert (reordered[:, strictly_lower].abs() > 0).float().mean() > 0.75  # the conditioning is really used


class CountingMADE(torch.nn.Module):
    """Wraps a MADE network and counts its forward passes."""

    def __init__(self, made):
        super().__init__()
        self.made, self.calls = made, 0

    def forward(self, x, context=None):
        self.calls += 1
        return self.made(x, context)


@pytest.mark.parametrize("kind, one_pass_direction", [("maf", "forward"), ("iaf", "inverse")])
def test_one_direction_takes_one_made_pass_and_the_other_one_per_dimension(kind, one_pass_direction):
    bijection = layer(kind, "affine", 6)
    bijection.made = CountingMADE(bijection.made)
    x = points(2, 6)
    directions = {"forward": bijection.forward, "inverse": bijection.inverse}
    for direction, function in directions.items():
        bijection.made.calls = 0
        function(x)
        assert bijection.made.calls == (1 if direction == one_pass_direction else 6)


def test_layers_start_as_the_identity():
    bijection = MaskedAutoregressive(3, [8], RationalQuadraticSpline(bins=3)).double()
    x = points(5, 3)
    z, log_abs_det = bijection(x)
    torch.testing.assert_close(z, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(log_abs_det, torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)


def test_autoregressive_flow_reverses_the_ordering_between_layers():
    flow = autoregressive_flow(MaskedAutoregressive, 4, 3, [8], Affine())
    kinds = [type(b) for b in flow.bijections]
    assert kinds == [MaskedAutoregressive, Permutation, MaskedAutoregressive, Permutation, MaskedAutoregressive]
    assert flow.bijections[1].order.tolist() == [3, 2, 1, 0]


def test_layer_rejects_inputs_of_the_wrong_dimension():
    bijection = MaskedAutoregressive(3, [8], Affine())
    for function in (bijection.forward, bijection.inverse):
        with pytest.raises(ValueError, match=r"vectors of shape \(N, 3\)"):
            function(torch.zeros(2, 4))
