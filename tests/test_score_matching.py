"""Score matching and Langevin dynamics against the mathematics of Gaussians: implicit score matching is the Fisher
divergence up to a constant (Hyvärinen's identity), sliced score matching is unbiased for it (and SSM-VR's variance
gap is the closed form), denoising score matching is the Fisher divergence to the noisy density up to a known
constant and its optimum is that density's score, Langevin chains reach the Gaussian they follow and annealed
Langevin the weights of a mixture; gradients reach a network's parameters; bad arguments raise ValueError."""
import math

import pytest
import torch
from torch import nn

from dgm.models.diffusion.score_matching import (annealed_langevin_dynamics, denoising_score_matching,
                                                 geometric_noise_levels, implicit_score_matching, langevin_dynamics,
                                                 noise_conditional_score_matching, sliced_score_matching)

F64 = torch.float64
MU = torch.tensor([1.0, -0.5], dtype=F64)
COVARIANCE = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=F64)
PRECISION = torch.linalg.inv(COVARIANCE)


def gaussian(n: int, seed: int) -> torch.Tensor:
    """``n`` draws of ``N(MU, COVARIANCE)``."""
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return MU + noise @ torch.linalg.cholesky(COVARIANCE).T


def true_score(x):
    return -(x - MU) @ PRECISION


def linear_score(matrix, shift):
    return lambda x: x @ torch.tensor(matrix, dtype=F64).T + torch.tensor(shift, dtype=F64)


def nonlinear_score(x):
    """The true score bent by a tanh: a Jacobian that varies with ``x`` and is not symmetric."""
    return true_score(x) + 0.5 * torch.tanh(x @ torch.tensor([[1.0, -0.7], [0.4, 0.8]], dtype=F64))


def within(estimates: torch.Tensor, expected, errors: float = 4.0) -> bool:
    """Whether the mean of i.i.d. ``estimates`` lies within ``errors`` standard errors of ``expected``."""
    estimates, expected = estimates.detach(), float(torch.as_tensor(expected).detach())
    return abs(estimates.mean().item() - expected) < errors * estimates.std().item() / len(estimates) ** 0.5


def test_implicit_score_matching_is_the_fisher_divergence_up_to_a_constant():
    x = gaussian(20000, 0)
    perturbed = linear_score([[-0.3, 0.2], [0.1, -0.9]], [0.4, -0.2])
    at_truth, at_perturbed = implicit_score_matching(true_score, x), implicit_score_matching(perturbed, x)
    torch.testing.assert_close(at_truth, -PRECISION.trace() + 0.5 * true_score(x).square().sum(1))  # exact trace
    fisher = 0.5 * (perturbed(x) - true_score(x)).square().sum(1)
    assert within(at_perturbed - at_truth - fisher, 0.0)                 # Hyvärinen: ISM(s) = Fisher(s) + constant
    assert within(at_truth, -0.5 * PRECISION.trace())                    # the constant: E ISM(s*) = −½ tr Σ⁻¹
    assert at_perturbed.mean() > at_truth.mean() + 0.1                   # ½ E‖s − s*‖² ≈ 0.21


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_score_matching_is_unbiased_for_implicit_score_matching(noise, variance_reduced):
    points, draws = gaussian(6, 1), 20000
    torch.manual_seed(2)
    estimates = sliced_score_matching(nonlinear_score, points.repeat(draws, 1), variance_reduced=variance_reduced,
                                      noise=noise).view(draws, 6)
    exact = implicit_score_matching(nonlinear_score, points)
    assert all(within(estimates[:, i], exact[i]) for i in range(6))
    assert (estimates.std(dim=0) > 0).all()   # an estimate, not the exact value


def test_more_projections_average_the_estimate():
    points, draws = gaussian(4, 3), 20000
    torch.manual_seed(4)
    one = sliced_score_matching(nonlinear_score, points.repeat(draws, 1)).view(draws, 4)
    four = sliced_score_matching(nonlinear_score, points.repeat(draws, 1), projections=4).view(draws, 4)
    exact = implicit_score_matching(nonlinear_score, points)
    assert all(within(four[:, i], exact[i]) for i in range(4))
    torch.testing.assert_close(four.std(dim=0) / one.std(dim=0), torch.full((4,), 0.5, dtype=F64), atol=0.03, rtol=0)


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_variance_reduction_pays_off_in_eight_dimensions(noise):
    """At the score of N(0, I₈) over data and projections: Var SSM-VR = 4 + (16 Gaussian | 0 Rademacher) against
    Var SSM = 44 | 32 (the module docstring's gap, averaged over the data)."""
    x = torch.randn(40000, 8, generator=torch.Generator().manual_seed(5), dtype=F64)
    torch.manual_seed(6)
    plain = sliced_score_matching(lambda y: -y, x, variance_reduced=False, noise=noise)
    reduced = sliced_score_matching(lambda y: -y, x, variance_reduced=True, noise=noise)
    expected = {"gaussian": (44.0, 20.0), "rademacher": (32.0, 4.0)}[noise]
    torch.testing.assert_close(torch.stack([plain.var(), reduced.var()]), torch.tensor(expected, dtype=F64),
                               rtol=0.06, atol=0)


def test_variance_gap_of_gaussian_projections_is_the_closed_form_and_can_be_negative():
    """``Var SSM − Var SSM-VR = ½‖s‖⁴ + 2sᵀ(∇s)s`` at a point: negative near the mode of an anisotropic Gaussian
    (the plain form is the better estimator there), large far from it."""
    points, draws = MU + torch.tensor([[0.5, 0.0], [3.0, -3.0]], dtype=F64), 100000
    gaps = []
    for variance_reduced in (False, True):
        torch.manual_seed(7)   # the same projections for both forms
        estimates = sliced_score_matching(true_score, points.repeat(draws, 1), variance_reduced=variance_reduced)
        gaps.append(estimates.view(draws, 2).var(dim=0))
    s = true_score(points)
    closed_form = 0.5 * s.square().sum(1).square() - 2 * ((s @ PRECISION) * s).sum(1)
    assert closed_form[0] < -0.2 and closed_form[1] > 300
    torch.testing.assert_close(gaps[0] - gaps[1], closed_form, rtol=0.05, atol=0.03)


DATA_STD, SIGMA = 0.7, 0.5
NOISY_VARIANCE = DATA_STD ** 2 + SIGMA ** 2


def isotropic(n: int, seed: int) -> torch.Tensor:
    return MU + DATA_STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def noisy_score(x):
    """The score of ``q_σ = N(MU, (s² + σ²) I)``, the data ``N(MU, s² I)`` convolved with ``N(0, σ² I)``."""
    return -(x - MU) / NOISY_VARIANCE


def test_denoising_score_matching_is_minimised_by_the_score_of_the_noisy_data():
    """DSM is quadratic in the parameters of a linear score ``a x + b``: one Newton step from 0 (with the same
    noise at each evaluation) lands on its minimiser, ``a = −1/(s² + σ²)``, ``b = MU/(s² + σ²)``."""
    x = isotropic(20000, 8)

    def minimiser(weighted: bool) -> torch.Tensor:
        def loss(theta):
            torch.manual_seed(9)
            return denoising_score_matching(lambda y, sigma: theta[0] * y + theta[1:], x, SIGMA, weighted).mean()
        zero = torch.zeros(3, dtype=F64)
        hessian = torch.autograd.functional.hessian(loss, zero)
        return -torch.linalg.solve(hessian, torch.autograd.functional.jacobian(loss, zero))

    theta = minimiser(weighted=False)
    assert theta[0].item() == pytest.approx(-1 / NOISY_VARIANCE, rel=0.03)
    torch.testing.assert_close(theta[1:], MU / NOISY_VARIANCE, atol=0.06, rtol=0)
    torch.testing.assert_close(minimiser(weighted=True), theta)   # σ² is a constant factor at one level


def test_denoising_score_matching_is_the_fisher_divergence_to_the_noisy_density_plus_a_constant():
    """``DSM(s) = ½ E‖s(x̃) − ∇ log q_σ(x̃)‖² + D/2 (1/σ² − 1/(s² + σ²))`` for every ``s`` (Vincent)."""
    x = isotropic(20000, 10)
    constant = 2 / 2 * (1 / SIGMA ** 2 - 1 / NOISY_VARIANCE)
    means = []
    for score in (noisy_score, linear_score([[-0.5, 0.3], [0.0, -2.0]], [0.2, 0.1]), torch.tanh):
        seen = []
        torch.manual_seed(11)
        dsm = denoising_score_matching(lambda y, sigma: seen.append((y, sigma)) or score(y), x, SIGMA)
        noisy_x, levels = seen[0]
        torch.testing.assert_close(levels, torch.full((20000,), SIGMA, dtype=F64))
        fisher = 0.5 * (score(noisy_x) - noisy_score(noisy_x)).square().sum(1)
        assert within(dsm - fisher, constant)
        means.append(dsm.mean().item())
    assert means[0] < min(means[1:])


def test_per_example_levels_weighting_and_the_ncsn_objective():
    x = isotropic(4000, 12)
    levels = torch.linspace(0.1, 2.0, 4000, dtype=F64)
    seen = []

    def score(y, sigma):
        seen.append(sigma)
        return torch.tanh(y) / sigma[:, None]

    torch.manual_seed(13)
    plain = denoising_score_matching(score, x, levels)
    torch.manual_seed(13)
    weighted = denoising_score_matching(score, x, levels, weighted=True)
    torch.testing.assert_close(seen[0], levels)
    torch.testing.assert_close(weighted, levels ** 2 * plain)
    ladder = geometric_noise_levels(1.0, 0.01, 5).double()
    seen.clear()
    zero_score = noise_conditional_score_matching(lambda y, sigma: seen.append(sigma) or torch.zeros_like(y), x, ladder)
    assert set(seen[0].tolist()) == set(ladder.tolist())          # a level from the ladder for each example
    assert within(zero_score, 1.0)                                 # ½‖ε‖² whatever the level: D/2 = 1


def test_geometric_noise_levels():
    ladder = geometric_noise_levels(50.0, 0.01, 10)
    assert ladder.shape == (10,) and ladder.dtype == torch.get_default_dtype()
    torch.testing.assert_close(ladder[[0, -1]], torch.tensor([50.0, 0.01]))
    ratios = ladder[1:] / ladder[:-1]
    torch.testing.assert_close(ratios, torch.full((9,), (0.01 / 50) ** (1 / 9)))


def test_langevin_chains_reach_the_gaussian_of_the_score():
    chains = 5000
    x0 = torch.tensor([3.0, -3.0], dtype=F64).expand(chains, 2)
    x, path = langevin_dynamics(true_score, x0, step_size=0.015, steps=2000,
                                generator=torch.Generator().manual_seed(14), record_every=500)
    assert path.shape == (5, chains, 2)
    torch.testing.assert_close(path[0], x0)
    torch.testing.assert_close(path[-1], x)
    standard_error = (COVARIANCE.diagonal() / chains).sqrt()
    assert ((x.mean(0) - MU).abs() < 4 * standard_error).all()
    # the covariance, within 4 standard errors and the O(ε) bias of the discretisation (ελ_max(Σ⁻¹)/4 ≈ 0.5%)
    covariance_error = ((COVARIANCE ** 2 + torch.outer(COVARIANCE.diagonal(), COVARIANCE.diagonal())) / chains).sqrt()
    assert ((torch.cov(x.T) - COVARIANCE).abs() < 4 * covariance_error + 0.01 * COVARIANCE.abs()).all()
    short = [langevin_dynamics(true_score, x0[:10], 0.015, 5, generator=torch.Generator().manual_seed(14))
             for _ in range(2)]
    torch.testing.assert_close(short[0], short[1], rtol=0, atol=0)     # the generator alone draws the noise


WEIGHTS, MEANS, COMPONENT_STD = torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([-2.0, 2.0], dtype=F64), 0.5


def mixture_score(x, sigma):
    """The score of the 1D mixture ``0.3 N(−2, ½²) + 0.7 N(2, ½²)`` convolved with ``N(0, σ²)``, for ``x`` ``(N, 1)``
    and levels ``σ`` ``(N,)``."""
    variance = (COMPONENT_STD ** 2 + sigma ** 2)[:, None]
    responsibilities = torch.softmax(WEIGHTS.log() - (x - MEANS) ** 2 / (2 * variance), dim=1)
    return (responsibilities * -(x - MEANS) / variance).sum(dim=1, keepdim=True)


def test_annealed_langevin_reproduces_a_mixture_and_its_mode_weights():
    chains, ladder = 5000, geometric_noise_levels(5.0, 0.1, 10)
    x0 = 16 * torch.rand(chains, 1, generator=torch.Generator().manual_seed(15), dtype=F64) - 8
    options = dict(sigmas=ladder, steps_per_level=200, epsilon=0.005)
    x, path = annealed_langevin_dynamics(mixture_score, x0, **options, generator=torch.Generator().manual_seed(16),
                                         record_every=500)
    assert path.shape == (5, chains, 1)
    torch.testing.assert_close(path[-1], x)
    mean = (WEIGHTS * MEANS).sum()
    variance = COMPONENT_STD ** 2 + (WEIGHTS * MEANS ** 2).sum() - mean ** 2
    samples = x[:, 0]
    assert within(samples, mean)
    assert within((samples - mean) ** 2, variance + ladder[-1].item() ** 2)     # the last level's noise remains
    assert within((samples > 0).double(), WEIGHTS[1])
    short = {**options, "steps_per_level": 3}
    noisy, denoised = (annealed_langevin_dynamics(mixture_score, x0[:50], **short, denoise=denoise,
                                                  generator=torch.Generator().manual_seed(16))
                       for denoise in (False, True))
    final = ladder[-1].double()
    torch.testing.assert_close(denoised, noisy + final ** 2 * mixture_score(noisy, final.expand(50)))


class TinyScore(nn.Module):
    """A score network ``(N, 2) → (N, 2)``, conditioned on ``log σ`` when called with levels."""

    def __init__(self, conditional: bool = False):
        super().__init__()
        torch.manual_seed(17)
        self.network = nn.Sequential(nn.Linear(2 + conditional, 16), nn.Tanh(), nn.Linear(16, 2)).double()

    def forward(self, x, sigma=None):
        return self.network(x if sigma is None else torch.cat([x, sigma.log()[:, None]], dim=1))


def parameter_gradients(network: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(network.parameters()))])


def test_implicit_score_matching_gradients_include_the_jacobian_trace():
    network, x = TinyScore(), gaussian(5, 18)
    gradients = parameter_gradients(network, implicit_score_matching(network, x).mean())
    jacobians = torch.autograd.functional.jacobian(network, x, create_graph=True)    # (N, 2, N, 2)
    traces = torch.stack([jacobians[i, :, i, :].trace() for i in range(5)])
    reference = (traces + 0.5 * network(x).square().sum(1)).mean()
    torch.testing.assert_close(gradients, parameter_gradients(network, reference))


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_score_matching_gradients_estimate_those_of_implicit_score_matching(noise, variance_reduced):
    network, x, draws = TinyScore(), gaussian(5, 19), 4000
    exact = parameter_gradients(network, implicit_score_matching(network, x).mean())
    torch.manual_seed(20)
    sliced = sliced_score_matching(network, x.repeat(draws, 1), variance_reduced=variance_reduced, noise=noise)
    estimate = parameter_gradients(network, sliced.mean())
    assert (estimate - exact).norm() < 0.05 * exact.norm()


def test_denoising_objectives_reach_the_parameters_and_no_grad_gives_values():
    network, x = TinyScore(conditional=True), gaussian(64, 21)
    for loss in (denoising_score_matching(network, x, 0.3), denoising_score_matching(network, x, 0.3, weighted=True),
                 noise_conditional_score_matching(network, x, [1.0, 0.5, 0.1])):
        gradients = parameter_gradients(network, loss.mean())
        assert torch.isfinite(gradients).all() and (gradients != 0).all()
    unconditional = TinyScore()
    torch.manual_seed(22)
    with_graph = sliced_score_matching(unconditional, x)
    with torch.no_grad():
        torch.manual_seed(22)
        without = sliced_score_matching(unconditional, x)
        exact = implicit_score_matching(unconditional, x)
    assert with_graph.requires_grad and not without.requires_grad and not exact.requires_grad
    torch.testing.assert_close(without, with_graph.detach())
    torch.testing.assert_close(exact, implicit_score_matching(unconditional, x).detach())


def test_images_flatten_for_the_exact_trace():
    x = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(23), dtype=F64)
    assert torch.allclose(implicit_score_matching(lambda y: -2 * y, x), -8 + 2 * x.flatten(1).square().sum(1))
    assert sliced_score_matching(lambda y: -2 * y, x).shape == (3,)


X = torch.zeros(4, 2, dtype=F64)
STEP = dict(step_size=0.1, steps=2)
ANNEAL = dict(sigmas=[1.0, 0.1], steps_per_level=2, epsilon=0.01)
ERRORS = [
    (lambda: denoising_score_matching(lambda y, s: y, X, 0.0), "sigma"),
    (lambda: denoising_score_matching(lambda y, s: y, X, torch.tensor([1.0, -1.0, 1.0, 1.0])), "sigma"),
    (lambda: denoising_score_matching(lambda y, s: y, X, torch.ones(3)), "sigma"),
    (lambda: denoising_score_matching(lambda y, s: y, X, math.nan), "sigma"),
    (lambda: denoising_score_matching(lambda y, s: y[:, :1], X, 1.0), "shape"),
    (lambda: denoising_score_matching(lambda y, s: y, torch.zeros(4), 1.0), "at least 2"),
    (lambda: implicit_score_matching(lambda y: y, torch.zeros(0, 2)), "non-empty"),
    (lambda: implicit_score_matching(lambda y: y, torch.zeros(4, 2, dtype=torch.long)), "floating"),
    (lambda: implicit_score_matching(lambda y: y.sum(1), X), "shape"),
    (lambda: sliced_score_matching(lambda y: y, X, projections=0), "projections"),
    (lambda: sliced_score_matching(lambda y: y, X, noise="uniform"), "noise"),
    (lambda: noise_conditional_score_matching(lambda y, s: y, X, [0.1, 1.0]), "descending"),
    (lambda: noise_conditional_score_matching(lambda y, s: y, X, []), "descending"),
    (lambda: langevin_dynamics(lambda y: y, X, step_size=0.0, steps=2), "step_size"),
    (lambda: langevin_dynamics(lambda y: y, X, step_size=0.1, steps=0), "steps"),
    (lambda: langevin_dynamics(lambda y: y, X, **STEP, record_every=0), "record_every"),
    (lambda: langevin_dynamics(lambda y: y[:, 0], X, **STEP), "shape"),
    (lambda: annealed_langevin_dynamics(lambda y, s: y, X, **{**ANNEAL, "sigmas": [1.0, 1.0]}), "descending"),
    (lambda: annealed_langevin_dynamics(lambda y, s: y, X, **{**ANNEAL, "sigmas": [1.0, -0.1]}), "descending"),
    (lambda: annealed_langevin_dynamics(lambda y, s: y, X, **{**ANNEAL, "steps_per_level": 0}), "steps_per_level"),
    (lambda: annealed_langevin_dynamics(lambda y, s: y, X, **{**ANNEAL, "epsilon": -1.0}), "epsilon"),
    (lambda: geometric_noise_levels(1.0, 0.0, 5), "sigma_min"),
    (lambda: geometric_noise_levels(0.1, 1.0, 5), "exceed"),
    (lambda: geometric_noise_levels(1.0, 0.1, 1), "levels"),
]


@pytest.mark.parametrize("call, message", ERRORS)
def test_bad_arguments_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
