"""The flow base: bijections invert exactly and report the true log|det| of their Jacobian."""
import pytest
import torch
from torch.autograd.functional import jacobian
from torch.nn.utils import vector_to_parameters

from dgm.flows import Affine, Bijection, Compose, Coupling, mlp_coupling


def randomized(bijection: Bijection, seed: int = 0, std: float = 0.5) -> Bijection:
    """``bijection`` in float64 with every parameter drawn from N(0, std²), so that no layer is the identity."""
    generator = torch.Generator().manual_seed(seed)
    count = sum(p.numel() for p in bijection.parameters())
    vector_to_parameters(std * torch.randn(count, generator=generator), bijection.parameters())
    return bijection.double()


def affine_coupling(mask, hidden=(8, 8), max_log_scale: float = 2.0) -> Coupling:
    return mlp_coupling(torch.as_tensor(mask), hidden, Affine(max_log_scale))


def coupling(mask: list[int], seed: int = 0, max_log_scale: float = 2.0) -> Coupling:
    return randomized(affine_coupling(mask, max_log_scale=max_log_scale), seed)


BIJECTIONS = {
    "coupling-2d": lambda: coupling([1, 0]),
    "coupling-2d-other-half": lambda: coupling([0, 1], seed=1),
    "coupling-5d": lambda: coupling([1, 0, 1, 0, 0], seed=2),
    "compose": lambda: Compose(coupling([1, 0, 1], seed=3), coupling([0, 1, 0], seed=4), coupling([1, 1, 0], seed=5)),
}


def inputs(bijection: Bijection, batch: int, seed: int = 10) -> torch.Tensor:
    dim = next(m.mask for m in bijection.modules() if isinstance(m, Coupling)).numel()
    return 2 * torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def autograd_log_abs_det(function, x: torch.Tensor) -> torch.Tensor:
    """``log|det ∂function/∂x|`` of each example, from the full Jacobian that autograd computes."""
    return torch.stack([torch.linalg.slogdet(jacobian(lambda v: function(v[None])[0][0], example))[1]
                        for example in x])


@pytest.mark.parametrize("name", BIJECTIONS)
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_inverse_undoes_forward_and_log_dets_cancel(name, batch):
    bijection = BIJECTIONS[name]()
    x = inputs(bijection, batch)
    z, forward_log_abs_det = bijection(x)
    x_again, inverse_log_abs_det = bijection.inverse(z)
    assert forward_log_abs_det.shape == inverse_log_abs_det.shape == (batch,)
    assert not torch.allclose(z, x, atol=1e-2)  # the random weights make the map far from the identity
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(forward_log_abs_det + inverse_log_abs_det, torch.zeros_like(forward_log_abs_det),
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", BIJECTIONS)
def test_log_abs_det_is_that_of_the_autograd_jacobian(name):
    bijection = BIJECTIONS[name]()
    x = inputs(bijection, 4)
    z, log_abs_det = bijection(x)
    assert log_abs_det.abs().min() > 1e-2  # a volume-preserving map would make this test weak
    torch.testing.assert_close(log_abs_det, autograd_log_abs_det(bijection, x), atol=1e-6, rtol=0)
    torch.testing.assert_close(bijection.inverse(z)[1], autograd_log_abs_det(bijection.inverse, z), atol=1e-6, rtol=0)


def test_coupling_keeps_masked_coordinates_and_is_affine_in_the_others():
    layer = coupling([1, 0, 1, 0, 0])
    x = inputs(layer, 16)
    y, _ = layer(x)
    kept = layer.mask.bool()
    torch.testing.assert_close(y[:, kept], x[:, kept], atol=0, rtol=0)
    # With the kept coordinates fixed, y is affine in the transformed ones: y(x + d) - y(x) is linear in d.
    step = torch.zeros_like(x)
    step[:, ~kept] = 1.0
    torch.testing.assert_close(layer(x + 2 * step)[0] - y, 2 * (layer(x + step)[0] - y))


def test_coupling_starts_as_the_identity():
    layer = affine_coupling([0, 1], hidden=[8]).double()
    x = inputs(layer, 5)
    y, log_abs_det = layer(x)
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    torch.testing.assert_close(log_abs_det, torch.zeros_like(log_abs_det), atol=0, rtol=0)


def test_soft_clamp_bounds_each_log_scale():
    layer = randomized(affine_coupling([1, 0, 0], hidden=[8], max_log_scale=0.7), std=30.0)
    x = inputs(layer, 256)
    _, log_abs_det = layer(x)
    assert log_abs_det.abs().max() <= 2 * 0.7  # two transformed coordinates, each |s| ≤ 0.7
    assert log_abs_det.abs().max() > 2 * 0.7 * 0.95  # and the huge weights do push against the bound


def test_compose_applies_layers_in_order_and_sums_log_dets():
    first, second = coupling([1, 0], seed=1), coupling([0, 1], seed=2)
    chain = Compose(first, second)
    x = inputs(chain, 7)
    middle, first_log_abs_det = first(x)
    z, second_log_abs_det = second(middle)
    chain_z, chain_log_abs_det = chain(x)
    torch.testing.assert_close(chain_z, z, atol=0, rtol=0)
    torch.testing.assert_close(chain_log_abs_det, first_log_abs_det + second_log_abs_det, atol=0, rtol=0)
    points = chain.trajectory(x)
    assert len(points) == 3
    for point, expected in zip(points, [x, middle, z]):
        torch.testing.assert_close(point, expected, atol=0, rtol=0)


@pytest.mark.parametrize("mask", [torch.tensor([0, 2]), torch.tensor([0.5, 1.0])])
def test_coupling_rejects_a_mask_that_is_not_binary(mask):
    with pytest.raises(ValueError, match="mask must be a tensor of 0s and 1s"):
        affine_coupling(mask, hidden=[4])


@pytest.mark.parametrize("mask", [[1, 1], [0, 0, 0]])
def test_coupling_rejects_a_mask_that_keeps_all_or_nothing(mask):
    with pytest.raises(ValueError, match="keep some elements and transform others"):
        affine_coupling(mask, hidden=[4])


def test_coupling_rejects_a_non_positive_scale_bound():
    with pytest.raises(ValueError, match="max_log_scale must be positive"):
        affine_coupling([1, 0], hidden=[4], max_log_scale=0.0)


def test_flow_models_take_any_base_distribution():
    """``FlowModel(bijection, base=...)``: the change of variables with a learned diagonal normal or a mixture base
    integrates to one, and samples and their densities agree with ``log_prob``."""
    from dgm.distributions import DiagonalNormal, MixtureOfGaussians
    from dgm.flows.coupling import mlp_coupling
    from dgm.flows.model import FlowModel
    from dgm.flows.permutation import alternating_mask
    from dgm.flows.transforms import Affine
    from dgm.plots import evaluate_density

    torch.manual_seed(0)
    bijection = Compose(*(mlp_coupling(alternating_mask(2, k), [8], Affine()) for k in range(2)))
    for base in (DiagonalNormal((2,)), MixtureOfGaussians((2,), components=3)):
        with torch.no_grad():
            for parameter in base.parameters():
                parameter.add_(0.3 * torch.randn_like(parameter))
        flow = FlowModel(bijection, base=base)
        with torch.no_grad():
            grid = evaluate_density(flow.log_prob, ((-9.0, 9.0), (-9.0, 9.0)), resolution=600)
            assert grid.integral == pytest.approx(1.0, abs=2e-3)
            torch.manual_seed(1)
            z = base.sample(5)
            x = bijection.inverse(z)[0]
            torch.testing.assert_close(flow.log_prob(x), base.log_prob(z) - bijection.inverse(z)[1])
        with pytest.raises(ValueError, match="standard normal base"):
            flow.sample(4, temperature=0.5)
    mixture_flow = FlowModel(bijection, base=MixtureOfGaussians((2,), components=3))
    assert mixture_flow.config == {"shape": [2]}
    with pytest.raises(NotImplementedError, match="rsample"):
        mixture_flow.sample_with_log_prob(4)
