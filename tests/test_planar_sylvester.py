"""Planar, radial and Sylvester flows: exact inverses by root-finding, log-dets of the autograd Jacobian, the
invertibility constraints, amortised (per-example) parameters, and the registered models' densities."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

import dgm
from dgm.flows.planar import (Planar, Radial, planar_constrained_u, planar_generate, planar_normalize,
                              radial_constrained, radial_generate, radial_normalize, solve_monotone)
from dgm.flows.sylvester import (Sylvester, householder_product, orthonormal_columns, sylvester_generate,
                                 sylvester_normalize, triangular_with_tanh_diagonal)
from dgm.plots import evaluate_density

F64 = torch.float64


def randomized(bijection, seed: int, std: float = 1.5):
    """``bijection`` in float64 with every raw parameter drawn from N(0, std²): far from the identity, and often at
    the edge of the constraints (``wᵀû`` near −1, ``β̂`` near −α)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in bijection.parameters():
        parameter.data = std * torch.randn(parameter.shape, generator=generator)
    return bijection.double()


LAYERS = {
    "planar-2d": lambda: (randomized(Planar(2), 0), 2),
    "planar-5d": lambda: (randomized(Planar(5), 1), 5),
    "radial-2d": lambda: (randomized(Radial(2), 2), 2),
    "radial-4d": lambda: (randomized(Radial(4), 3), 4),
    "sylvester-orthogonal-m2-of-5": lambda: (randomized(Sylvester(5, "orthogonal", hidden=2), 4), 5),
    "sylvester-orthogonal-full": lambda: (randomized(Sylvester(3, "orthogonal"), 5), 3),
    "sylvester-householder": lambda: (randomized(Sylvester(4, "householder", reflections=3), 6), 4),
    "sylvester-triangular": lambda: (randomized(Sylvester(3, "triangular"), 7), 3),
    "sylvester-triangular-reversed": lambda: (randomized(Sylvester(3, "triangular", reverse=True), 8), 3),
}


def points(dim: int, batch: int, seed: int = 10) -> torch.Tensor:
    return 2 * torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def autograd_log_abs_det(function, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.linalg.slogdet(jacobian(lambda v: function(v[None])[0][0], example))[1]
                        for example in x])


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("batch", [1, 64])
def test_normalizing_direction_inverts_the_generative_one(name, batch):
    layer, dim = LAYERS[name]()
    z = points(dim, batch)
    x, generative_log_det = layer.inverse(z)
    z_again, normalizing_log_det = layer(x)
    assert generative_log_det.shape == normalizing_log_det.shape == (batch,)
    assert (x - z).abs().max() > 1e-2
    torch.testing.assert_close(z_again, z, atol=1e-6, rtol=0)
    torch.testing.assert_close(generative_log_det + normalizing_log_det, torch.zeros(batch, dtype=F64),
                               atol=1e-6, rtol=0)
    x_again, _ = layer.inverse(layer(x)[0])   # and the other way round
    torch.testing.assert_close(x_again, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_log_dets_are_those_of_the_autograd_jacobian(name):
    layer, dim = LAYERS[name]()
    z = points(dim, 6) / 4   # near the hyperplanes and centres, where tanh is not saturated
    x, generative_log_det = layer.inverse(z)
    assert generative_log_det.abs().max() > 0.05  # not volume-preserving
    torch.testing.assert_close(generative_log_det, autograd_log_abs_det(layer.inverse, z), atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(x)[1], autograd_log_abs_det(layer, x), atol=1e-6, rtol=0)


def test_constraints_hold_for_any_raw_parameters():
    generator = torch.Generator().manual_seed(0)
    u, w = 5 * torch.randn(2, 1000, 3, generator=generator, dtype=F64)
    w_dot_u_hat = torch.sum(w * planar_constrained_u(u, w), dim=1)
    assert (w_dot_u_hat >= -1 - 1e-12).all() and (w_dot_u_hat > -1).float().mean() > 0.5  # up to rounding
    alpha, beta = radial_constrained(*(5 * torch.randn(2, 1000, generator=generator, dtype=F64)))
    assert (alpha > 0).all() and (beta >= -alpha).all()
    r = triangular_with_tanh_diagonal(5 * torch.randn(1000, 3, 3, generator=generator, dtype=F64))
    assert torch.equal(r, r.triu()) and (torch.diagonal(r, dim1=-2, dim2=-1).abs() < 1).all()
    q = orthonormal_columns(torch.randn(10, 5, 2, generator=generator, dtype=F64))
    torch.testing.assert_close(q.transpose(1, 2) @ q, torch.eye(2, dtype=F64).expand(10, 2, 2))
    h = householder_product(torch.randn(10, 3, 4, generator=generator, dtype=F64))
    torch.testing.assert_close(h.transpose(1, 2) @ h, torch.eye(4, dtype=F64).expand(10, 4, 4))


def test_planar_at_the_edge_of_the_constraint_stays_invertible():
    # wᵀû → −1: the Jacobian becomes singular only where tanh' = 1; elsewhere the root stays unique
    w = torch.tensor([1.0, 0.0], dtype=F64)
    u_hat = torch.tensor([-0.999, 0.3], dtype=F64)
    z = points(2, 50)
    x, _ = planar_generate(z, u_hat, w, torch.tensor(0.2, dtype=F64))
    torch.testing.assert_close(planar_normalize(x, u_hat, w, torch.tensor(0.2, dtype=F64))[0], z, atol=1e-6, rtol=0)


def test_solver_finds_roots_to_machine_precision_and_its_gradient_is_implicit():
    generator = torch.Generator().manual_seed(1)
    target, scale, shift = torch.randn(3, 200, generator=generator, dtype=F64) * 3
    slope = (torch.rand(200, generator=generator, dtype=F64) * 2 - 1) / scale.abs().clamp(min=1)  # scale·slope > −1
    scale.requires_grad_(True)
    y = solve_monotone(target, scale, slope, shift)
    torch.testing.assert_close(y + scale * torch.tanh(slope * y + shift), target, atol=1e-12, rtol=0)
    # ∂y/∂scale = −tanh(·)/(1 + scale·slope·sech²(·)), the implicit function theorem
    activation = torch.tanh(slope * y + shift)
    expected = -activation / (1 + scale * slope * (1 - activation ** 2))
    torch.testing.assert_close(torch.autograd.grad(y.sum(), scale)[0], expected.detach(), atol=1e-10, rtol=0)


def test_amortised_parameters_act_per_example():
    """One set of parameters per example (as an encoder would output) equals each example's own shared map."""
    generator = torch.Generator().manual_seed(2)
    n, dim, hidden = 5, 4, 2
    z = torch.randn(n, dim, generator=generator, dtype=F64)
    q = orthonormal_columns(torch.randn(n, dim, hidden, generator=generator, dtype=F64))
    r, r_tilde = (triangular_with_tanh_diagonal(torch.randn(n, hidden, hidden, generator=generator, dtype=F64))
                  for _ in range(2))
    b = torch.randn(n, hidden, generator=generator, dtype=F64)
    u, w = torch.randn(2, n, dim, generator=generator, dtype=F64)
    planar_b = torch.randn(n, generator=generator, dtype=F64)
    z0 = torch.randn(n, dim, generator=generator, dtype=F64)
    alpha, beta = radial_constrained(*torch.randn(2, n, generator=generator, dtype=F64))
    u_hat = planar_constrained_u(u, w)
    maps = [(sylvester_generate, sylvester_normalize, (q, r, r_tilde, b)),
            (planar_generate, planar_normalize, (u_hat, w, planar_b)),
            (radial_generate, radial_normalize, (z0, alpha, beta))]
    for generate, normalize, parameters in maps:
        x, log_det = generate(z, *parameters)
        for i in range(n):
            x_i, log_det_i = generate(z[i:i + 1], *(p[i] for p in parameters))
            torch.testing.assert_close(x_i[0], x[i])
            torch.testing.assert_close(log_det_i[0], log_det[i])
        z_again, inverse_log_det = normalize(x, *parameters)
        torch.testing.assert_close(z_again, z, atol=1e-6, rtol=0)
        torch.testing.assert_close(inverse_log_det, -log_det, atol=1e-6, rtol=0)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="variant"):
        Sylvester(3, "diagonal")
    with pytest.raises(ValueError, match="hidden"):
        Sylvester(3, "householder", hidden=2)
    with pytest.raises(ValueError, match="hidden"):
        Sylvester(3, "orthogonal", hidden=4)
    with pytest.raises(ValueError, match="n_layers"):
        dgm.create("planar", shape=(2,), n_layers=0)
    with pytest.raises(ValueError, match="no argument"):  # the reverse KL is an objective of the trainer
        dgm.create("radial", shape=(2,), objective="reverse_kl")


MODELS = {"planar": {"n_layers": 6}, "radial": {"n_layers": 6},
          "sylvester": {"n_layers": 3}, "sylvester-householder": {"n_layers": 3, "variant": "householder"},
          "sylvester-triangular": {"n_layers": 3, "variant": "triangular"}}


@pytest.mark.parametrize("name", MODELS)
def test_registered_model_densities_integrate_to_one_and_match_their_samples(name):
    torch.manual_seed(0)
    model = randomized(dgm.create(name.split("-")[0], shape=(2,), **MODELS[name]), seed=3, std=0.7)
    grid = evaluate_density(lambda x: model.log_prob(x.double()), ((-8, 8), (-8, 8)), resolution=160)
    assert grid.integral == pytest.approx(1.0, abs=1e-2)
    x, log_q = model.sample_with_log_prob(50)
    torch.testing.assert_close(model.log_prob(x), log_q, atol=1e-6, rtol=0)
    assert math.isfinite(model.loss(x)["loss"].item())


def test_planar_stack_starts_as_the_identity():
    """û = 0 at initialisation: 32 planar layers map N(0, I) to itself (they used to shrink it a hundredfold)."""
    torch.manual_seed(0)
    planar = dgm.create("planar", shape=(2,))
    z = torch.randn(500, 2)
    x, log_abs_det = planar.bijection.inverse(z)
    torch.testing.assert_close(x, z, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_abs_det, torch.zeros(500), atol=1e-6, rtol=0)
    for layer in planar.bijection.bijections:
        assert planar_constrained_u(layer.u, layer.w).abs().max() < 1e-6
    samples = planar.sample(20000)
    assert (samples.std(0) - 1).abs().max() < 0.03
