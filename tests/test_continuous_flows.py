"""Continuous flows (Neural ODE / FFJORD): the Hutchinson estimator is unbiased for the trace, the ODE flow inverts
and its log-det is that of the autograd Jacobian of the flow map, adjoint gradients equal direct ones, and the
registered model's density integrates to 1."""
import pytest
import torch
from torch.autograd.functional import jacobian

import dgm
from dgm.flows.continuous import ContinuousFlow, TimeMLP, draw_noise, exact_trace, hutchinson_trace
from dgm.plots import evaluate_density

F64 = torch.float64
TIGHT = {"atol": 1e-10, "rtol": 1e-10}


def tiny_flow(seed: int = 0, dim: int = 2, **options) -> ContinuousFlow:
    torch.manual_seed(seed)
    flow = ContinuousFlow(TimeMLP(dim, [8, 8]), **{"trace": "exact", **TIGHT, **options}).double()
    for parameter in flow.parameters():
        parameter.data = 0.8 * torch.randn_like(parameter)
    return flow


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_hutchinson_estimate_is_unbiased_for_the_trace(noise):
    dynamics = tiny_flow(dim=3).augmented.dynamics
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    draws = 2000
    repeated = x.repeat(draws, 1).requires_grad_(True)
    velocity = dynamics(torch.tensor(0.3, dtype=F64), repeated)
    exact = exact_trace(velocity, repeated, create_graph=False).view(draws, 4)
    torch.manual_seed(2)
    estimates = hutchinson_trace(velocity, repeated, draw_noise(repeated, noise), create_graph=False).view(draws, 4)
    torch.testing.assert_close(exact, exact[:1].expand(draws, 4))   # the same points, the same trace
    standard_error = estimates.std(dim=0) / draws ** 0.5
    assert ((estimates.mean(dim=0) - exact[0]).abs() < 4 * standard_error).all()
    assert (estimates.std(dim=0) > 0).all()


def test_noise_kinds():
    like = torch.zeros(10000, 2, dtype=F64)
    torch.manual_seed(0)
    rademacher = draw_noise(like, "rademacher")
    assert set(rademacher.unique().tolist()) == {-1.0, 1.0}
    gaussian = draw_noise(like, "gaussian")
    assert gaussian.std().item() == pytest.approx(1.0, abs=0.03)


def test_inverse_undoes_forward_and_log_dets_cancel():
    flow = tiny_flow().eval()
    x = 2 * torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    z, forward_log_det = flow(x)
    x_again, inverse_log_det = flow.inverse(z)
    assert (z - x).abs().max() > 0.1 and forward_log_det.abs().max() > 0.05
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(forward_log_det + inverse_log_det, torch.zeros(16, dtype=F64), atol=1e-6, rtol=0)


def test_log_det_is_that_of_the_autograd_jacobian_of_the_flow_map():
    flow = tiny_flow(dim=3, atol=1e-9, rtol=1e-9)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    _, log_det = flow(x)
    # examples do not interact, so the Jacobian of the batch sum holds each example's Jacobian: (D, N, D)
    per_example = jacobian(lambda batch: flow(batch)[0].sum(dim=0), x).permute(1, 0, 2)
    torch.testing.assert_close(log_det, torch.linalg.slogdet(per_example)[1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_adjoint_gradients_equal_backpropagation_through_the_solver(trace):
    direct = tiny_flow(seed=5, trace=trace, atol=1e-8, rtol=1e-8).train()
    adjoint = tiny_flow(seed=5, trace=trace, adjoint=True, atol=1e-8, rtol=1e-8).train()
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    gradients = []
    for flow in (direct, adjoint):
        torch.manual_seed(7)   # the same Hutchinson noise
        z, log_det = flow(x)
        (z.pow(2).sum() - log_det.sum()).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in flow.parameters()]))
    torch.testing.assert_close(gradients[1], gradients[0], atol=1e-5, rtol=1e-5)


def test_hutchinson_only_while_training_with_gradients():
    flow = tiny_flow(trace="hutchinson").train()
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(8), dtype=F64)
    exact = tiny_flow(trace="exact")(x)[1]
    assert (flow(x)[1] - exact).abs().max() > 1e-4    # a one-sample estimate
    with torch.no_grad():
        torch.testing.assert_close(flow(x)[1], exact.detach())
    torch.testing.assert_close(flow.eval()(x)[1], exact)


def test_trajectory_runs_through_intermediate_times():
    flow = tiny_flow().eval()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(9), dtype=F64)
    path = flow.trajectory(x, steps=4)
    assert len(path) == 5
    torch.testing.assert_close(path[0], x)
    torch.testing.assert_close(path[-1], flow(x)[0], atol=1e-8, rtol=0)
    back = flow.trajectory(path[-1], steps=4, generative=True)
    torch.testing.assert_close(back[-1], x, atol=1e-8, rtol=0)


def test_ffjord_model_density_integrates_to_one_and_matches_its_samples():
    torch.manual_seed(0)
    model = dgm.create("ffjord", shape=(2,), hidden=[16, 16], atol=1e-6, rtol=1e-6).double()
    for parameter in model.parameters():
        parameter.data = 0.6 * torch.randn_like(parameter)
    model.eval()
    grid = evaluate_density(lambda x: model.log_prob(x.double()), ((-7, 7), (-7, 7)), resolution=70)
    assert grid.integral == pytest.approx(1.0, abs=1e-2)
    with torch.no_grad():
        x, log_q = model.sample_with_log_prob(20)
        torch.testing.assert_close(model.log_prob(x), log_q, atol=1e-3, rtol=0)  # two solves at tolerance 1e-6
    assert len(model.layer_trajectory(x, steps=3)) == len(model.layer_trajectory(x, "generative", steps=3)) == 4
    with pytest.raises(ValueError, match="trace"):
        dgm.create("ffjord", shape=(2,), trace="random")
    with pytest.raises(ValueError, match="direction"):
        model.layer_trajectory(x, "sideways")
