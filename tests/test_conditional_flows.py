"""Conditional flows: couplings (vectors and images), MAF/IAF layers, their compositions and conditional MADE.

For every fixed context the map inverts exactly and reports the true log|det| of its Jacobian in ``x``; the context
really changes the map; conditional MADE keeps the autoregressive property whatever the context.
"""
import pytest
import torch
from torch.autograd.functional import jacobian

from dgm.flows import ActNorm, Affine, Compose, MultiScale, Permutation, channel_mask, checkerboard_mask, mlp_coupling
from dgm.flows.autoregressive import InverseAutoregressive, MaskedAutoregressive
from dgm.flows.image_coupling import resnet_coupling
from dgm.nn.made import MADENetwork


def perturbed(module, seed: int = 0, std: float = 0.4):
    """``module`` in float64 and evaluation mode with N(0, std²) noise added to every parameter, so that no layer is
    the identity (zero-initialised last layers included)."""
    generator = torch.Generator().manual_seed(seed)
    module = module.double().eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(std * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module


def image_coupling(shape, context_channels: int, parity: int = 0):
    return resnet_coupling(checkerboard_mask(shape, parity), Affine(), channels=4, blocks=1,
                           context_channels=context_channels)


def multiscale(context_channels: int):
    """One scale on ``(2, 4, 4)`` images; its couplings see the context squeezed to ``(4 · context_channels, 2, 2)``."""
    squeezed = resnet_coupling(channel_mask((8, 2, 2), 1), Affine(), channels=4, blocks=0,
                               context_channels=4 * context_channels)
    inner = resnet_coupling(channel_mask((4, 2, 2), 0), Affine(), channels=4, blocks=0,
                            context_channels=4 * context_channels)
    return MultiScale(squeezed, inner)


# name: (conditional bijection, shape of one example, shape of one context)
CASES = {
    "vector-coupling": (lambda: mlp_coupling(torch.tensor([1, 0, 1, 0, 0]), [8, 8], Affine(), context_dim=3),
                        (5,), (3,)),
    "image-coupling": (lambda: image_coupling((2, 4, 4), context_channels=3), (2, 4, 4), (3, 4, 4)),
    "maf": (lambda: MaskedAutoregressive(4, [16, 16], Affine(), order="random", seed=1, context_dim=2), (4,), (2,)),
    "iaf": (lambda: InverseAutoregressive(4, [16, 16], Affine(), order="random", seed=2, context_dim=2), (4,), (2,)),
    "compose-vectors": (lambda: Compose(mlp_coupling(torch.tensor([1, 0, 1, 0]), [8], Affine(), context_dim=2),
                                        Permutation.reverse(4), ActNorm(4),
                                        MaskedAutoregressive(4, [12], Affine(), context_dim=2)), (4,), (2,)),
    "compose-images": (lambda: Compose(image_coupling((2, 4, 4), 1, parity=0), ActNorm(2),
                                       image_coupling((2, 4, 4), 1, parity=1)), (2, 4, 4), (1, 4, 4)),
    "multiscale": (lambda: multiscale(context_channels=1), (2, 4, 4), (1, 4, 4)),
}


def build(name):
    bijection, shape, context_shape = CASES[name]
    torch.manual_seed(len(name))  # the initial weights, before the perturbation
    return perturbed(bijection(), seed=len(name)), shape, context_shape


def draw(n: int, shape, seed: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def autograd_log_abs_det(function, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """``log|det ∂function(x, c)/∂x|`` of each example with its context held fixed, from autograd's Jacobian."""
    def one(k):
        flat = lambda v: function(v.view(1, *x.shape[1:]), context[k:k + 1])[0].reshape(-1)
        return torch.linalg.slogdet(jacobian(flat, x[k].reshape(-1)))[1]
    return torch.stack([one(k) for k in range(len(x))])


@pytest.mark.parametrize("name", CASES)
def test_inverse_undoes_forward_given_the_context(name):
    bijection, shape, context_shape = build(name)
    x, context = draw(4, shape, seed=1), draw(4, context_shape, seed=2)
    z, log_abs_det = bijection(x, context)
    x_again, inverse_log_abs_det = bijection.inverse(z, context)
    assert not torch.allclose(z, x, atol=1e-2)
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_abs_det + inverse_log_abs_det, torch.zeros(4, dtype=torch.float64), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_log_abs_det_is_that_of_the_autograd_jacobian_for_a_fixed_context(name):
    bijection, shape, context_shape = build(name)
    x, context = draw(2, shape, seed=3), draw(2, context_shape, seed=4)
    z, log_abs_det = bijection(x, context)
    assert log_abs_det.abs().min() > 1e-2  # a volume-preserving map would make this test weak
    torch.testing.assert_close(log_abs_det, autograd_log_abs_det(bijection, x, context), atol=1e-6, rtol=0)
    torch.testing.assert_close(bijection.inverse(z, context)[1], autograd_log_abs_det(bijection.inverse, z, context),
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_the_map_depends_on_the_context(name):
    bijection, shape, context_shape = build(name)
    x = draw(4, shape, seed=5)
    first, second = draw(4, context_shape, seed=6), draw(4, context_shape, seed=7)
    for direction in (bijection.forward, bijection.inverse):
        (y_first, log_first), (y_second, log_second) = direction(x, first), direction(x, second)
        assert (y_first - y_second).flatten(1).abs().max(dim=1).values.min() > 1e-3
        assert (log_first - log_second).abs().min() > 1e-4


@pytest.mark.parametrize("name", ["vector-coupling", "image-coupling", "maf", "iaf"])
def test_a_conditional_layer_refuses_to_run_without_its_context_or_with_one_of_the_wrong_shape(name):
    bijection, shape, context_shape = build(name)
    x = draw(2, shape, seed=8)
    wrong = draw(2, (context_shape[0] + 1, *context_shape[1:]), seed=9)
    for direction in (bijection.forward, bijection.inverse):
        for context in (None, wrong):
            with pytest.raises(ValueError, match="conditional: it needs a context of shape"):
                direction(x, context)


@pytest.mark.parametrize("bijection, shape", [
    (lambda: mlp_coupling(torch.tensor([1, 0, 1]), [8], Affine()), (3,)),
    (lambda: resnet_coupling(checkerboard_mask((1, 2, 2)), Affine(), channels=4, blocks=0), (1, 2, 2)),
    (lambda: MaskedAutoregressive(3, [8], Affine()), (3,)),
])
def test_a_layer_built_without_a_context_ignores_one(bijection, shape):
    layer = perturbed(bijection())
    x = draw(3, shape, seed=10)
    for direction in (layer.forward, layer.inverse):
        for expected, given in zip(direction(x), direction(x, draw(3, (2, *shape[1:]), seed=11))):
            torch.testing.assert_close(given, expected, atol=0, rtol=0)


# -- conditional MADE -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [(), (32,), (32, 32)])
def test_conditional_made_is_autoregressive_whatever_the_context_and_every_output_sees_the_context(hidden):
    torch.manual_seed(0)
    net = perturbed(MADENetwork(5, hidden, 2, order="random", seed=3, context_dim=3), std=1.0)
    ranks, x = net.order, draw(1, (5,), seed=12)
    for seed in (13, 14, 15):
        context = draw(1, (3,), seed=seed)
        by_input = jacobian(lambda v: net(v, context), x)[0, :, :, 0]  # (output dim, out_per_dim, input dim)
        may_depend = ranks[None, :] < ranks[:, None]  # [i, j]: input j comes before output i in the ordering
        assert (by_input.abs().sum(dim=1)[~may_depend] == 0).all()
        assert (by_input.abs().sum(dim=1)[may_depend] > 0).float().mean() > 0.6  # the inputs are really used
        by_context = jacobian(lambda c: net(x, c), context)[0, :, :, 0]  # (output dim, out_per_dim, context)
        assert (by_context.abs().sum(dim=(1, 2)) > 0).all()  # the first output in the ordering included


def test_conditional_made_masks_connect_the_context_to_every_output_and_each_input_only_to_later_outputs():
    net = MADENetwork(4, [5, 5], 2, context_dim=3)  # natural order, hidden layers as wide as the degrees [-1, 2]
    paths = net.masks[0].double()
    for mask in net.masks[1:]:
        paths = mask.double() @ paths  # [output feature, input feature]: the number of paths between them
    by_dimension = paths[:, :4].view(4, 2, 4).sum(dim=1)
    assert torch.equal(by_dimension > 0, torch.tril(torch.ones(4, 4, dtype=torch.bool), diagonal=-1))
    assert (paths[:, 4:] > 0).all()
    assert (net.masks[0][:, 4:] == 1).all()  # every unit of the first layer sees the context
