"""Diffusion models: the forward process in closed form against its chain, the posterior, the bound's terms, and
every sampler and the probability-flow likelihood with the exact score of a Gaussian (an oracle network)."""
import math

import pytest
import torch
from torch import nn

import dgm
from dgm.models.diffusion.base import TIME_SCALE
from dgm.models.diffusion.samplers import SAMPLERS, make_sampler
from dgm.models.diffusion.schedules import VarianceExploding, VariancePreserving
from dgm.models.diffusion.score_matching import geometric_noise_levels, noise_conditional_score_matching

MEAN = torch.tensor([0.5, -1.0], dtype=torch.float64)
STD = 0.7


class GaussianOracle(nn.Module):
    """The optimal noise prediction for data ``N(MEAN, STD² I)``: ``E[ε | x_t] = σ (x_t − α μ) / (α² s² + σ²)``."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.unused = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x_t, scaled_t, labels=None):
        t = scaled_t / TIME_SCALE
        alpha, sigma = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        return sigma * (x_t - alpha * MEAN) / (alpha ** 2 * STD ** 2 + sigma ** 2)


def oracle_model(name="ddpm", **options):
    model = dgm.create(name, shape=(2,), **options).double()
    model.network = GaussianOracle(model.schedule)
    return model


def gaussian_log_density(x):
    return (-0.5 * ((x - MEAN) / STD) ** 2 - math.log(STD) - 0.5 * math.log(2 * math.pi)).sum(1)


def test_linear_and_cosine_schedules_follow_their_papers():
    betas = VariancePreserving(1000, "linear").betas()
    assert torch.allclose(betas, torch.linspace(1e-4, 0.02, 1000, dtype=betas.dtype), rtol=0.011, atol=1.1e-5)
    cosine = VariancePreserving(1000, "cosine")
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    assert torch.allclose(cosine.alpha(t) ** 2, f, rtol=1e-9)
    schedule = VarianceExploding(10, 0.01, 1.0)
    ladder = schedule.sigma(schedule.times())
    assert torch.allclose(ladder, geometric_noise_levels(1.0, 0.01, 10), rtol=1e-6)


@pytest.mark.parametrize("schedule", [VariancePreserving(50, "linear"), VariancePreserving(50, "cosine"),
                                      VarianceExploding(10, 0.01, 5.0)])
def test_drift_and_diffusion_give_the_marginals(schedule):
    """``dσ²/dt = g² + 2 f σ²`` and ``d log α/dt = f`` inside a step, by finite differences."""
    t = torch.tensor([0.31, 0.57, 0.93], dtype=torch.float64)
    h = 1e-6
    d_log_alpha = (schedule.alpha(t + h).log() - schedule.alpha(t - h).log()) / (2 * h)
    d_variance = (schedule.sigma(t + h) ** 2 - schedule.sigma(t - h) ** 2) / (2 * h)
    assert torch.allclose(d_log_alpha, schedule.drift(t), rtol=1e-5, atol=1e-8)
    expected = schedule.diffusion_squared(t) + 2 * schedule.drift(t) * schedule.sigma(t) ** 2
    assert torch.allclose(d_variance, expected, rtol=1e-5)


def test_closed_form_marginal_matches_the_chain_step_by_step():
    torch.manual_seed(0)
    schedule = VariancePreserving(40, "linear")
    x = torch.full((200_000,), 1.5, dtype=torch.float64)
    for beta in schedule.betas():
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn_like(x)
    t = torch.tensor([1.0], dtype=torch.float64)
    mean, std = schedule.alpha(t) * 1.5, schedule.sigma(t)
    standard_error = std / math.sqrt(len(x))
    assert abs(x.mean() - mean) < 4 * standard_error
    assert abs(x.std() - std) < 4 * std / math.sqrt(2 * len(x))


def test_posterior_matches_regression_on_the_chain():
    """``q(x_{t−1} | x_t, x_0)``: for fixed ``x_0`` the pair is jointly Gaussian; the regression of ``x_{t−1}`` on
    ``x_t`` over many chains gives the posterior's mean coefficients and variance."""
    from dgm.models.diffusion.samplers import posterior_log_variance, posterior_mean
    torch.manual_seed(1)
    schedule = VariancePreserving(20, "cosine")
    t, s = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.45, dtype=torch.float64)
    x0 = 0.8
    n = 400_000
    x_s = schedule.alpha(s) * x0 + schedule.sigma(s) * torch.randn(n, dtype=torch.float64)
    alpha_ts = schedule.alpha(t) / schedule.alpha(s)
    step_std = (schedule.sigma(t) ** 2 - alpha_ts ** 2 * schedule.sigma(s) ** 2).sqrt()
    x_t = alpha_ts * x_s + step_std * torch.randn_like(x_s)
    slope = ((x_t - x_t.mean()) * (x_s - x_s.mean())).mean() / x_t.var()
    intercept = x_s.mean() - slope * x_t.mean()
    residual = (x_s - intercept - slope * x_t).var()
    probe = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64)
    predicted = posterior_mean(schedule, t, s, probe, torch.full_like(probe, x0))
    assert torch.allclose(predicted, intercept + slope * probe, atol=5e-3)
    assert posterior_log_variance(schedule, t, s).exp().item() == pytest.approx(residual.item(), rel=1e-2)


def test_prediction_parametrizations_are_consistent():
    torch.manual_seed(2)
    for prediction in ("epsilon", "x0", "v"):
        model = dgm.create("ddpm", shape=(3,), steps=10, prediction=prediction).double()
        x_t, t, raw = torch.randn(5, 3).double(), torch.rand(5).double() * 0.9 + 0.1, torch.randn(5, 3).double()
        guess = model.interpret(raw, x_t, t)
        alpha, sigma = model.schedule.alpha(t)[:, None], model.schedule.sigma(t)[:, None]
        assert torch.allclose(alpha * guess.x0 + sigma * guess.epsilon, x_t)
        assert torch.allclose(model.target(guess.x0, guess.epsilon, t), raw)


def test_stratified_bound_estimate_is_unbiased_and_noisier():
    torch.manual_seed(3)
    model = oracle_model(steps=20, variance="forward")
    x = MEAN + STD * torch.randn(4, 2, dtype=torch.float64)
    draws = 150
    full = torch.stack([model.log_prob(x) for _ in range(draws)])
    sampled = torch.stack([model.log_prob(x, timesteps=4) for _ in range(draws)])
    error = (full.var(0) / draws + sampled.var(0) / draws).sqrt()
    assert ((full.mean(0) - sampled.mean(0)).abs() < 4 * error).all()
    assert (sampled.std(0) > full.std(0)).all()  # fewer terms, more spread
    # each example draws its own steps: copies of one point in one call spread as separate calls do (the
    # interquartile range: the terms are heavy-tailed)
    def interquartile(values):
        return values.quantile(0.75) - values.quantile(0.25)

    copies = model.log_prob(x[:1].expand(2000, 2), timesteps=4)
    assert 0.75 < interquartile(copies) / interquartile(sampled[:, 0]) < 1.33


@pytest.mark.parametrize("variance", ["posterior", "forward"])
def test_variational_bound_lies_below_the_data_log_likelihood(variance):
    """``E_data[bound] ≤ E_data[log p_model] ≤ E_data[log p_data] = −H``; with the true score and the forward
    variances (optimal for broad data, DDPM §3.2) the bound is tight at 100 steps."""
    torch.manual_seed(4)
    model = oracle_model(steps=100, variance=variance)
    x = MEAN + STD * torch.randn(4000, 2, dtype=torch.float64)
    bound = model.log_prob(x)
    negative_entropy = gaussian_log_density(x).mean()
    assert bound.mean() < negative_entropy + 3 * bound.std() / math.sqrt(len(x))
    if variance == "forward":
        assert bound.mean() > negative_entropy - 0.1


def test_probability_flow_likelihood_equals_the_exact_one():
    """The cosine schedule ends at ``α(1) ≈ 10⁻⁴``, so its prior ``N(0, I)`` is the true ``p_1`` to 10⁻⁴ (the
    linear one ends at ``α(1) = 0.006`` and is off by 0.01); the rest is the solver's error at the kinks of the
    piecewise-linear ``log α``."""
    torch.manual_seed(4)
    model = oracle_model(steps=50, schedule="cosine", times="continuous")  # from ε = 1e-5, where p_ε ≈ p_0
    x = MEAN + STD * torch.randn(6, 2, dtype=torch.float64)
    log_density = model.log_prob(x, method="ode", atol=1e-7, rtol=1e-7)
    assert torch.allclose(log_density, gaussian_log_density(x), atol=2e-3)


# enough steps that each sampler's discretization error is well below the Monte Carlo error of 4000 samples
SAMPLER_CASES = [("ancestral", {"steps": 1000}), ("ancestral", {"steps": 1000, "variance": "forward"}),
                 ("ddim", {"steps": 500}), ("ddim", {"steps": 1000, "eta": 1.0}), ("ode", {}),
                 ("ode", {"solver": "rk4", "steps": 30}), ("dpm_solver", {"steps": 30}),
                 ("euler_maruyama", {"steps": 500}), ("predictor_corrector", {"steps": 300})]


@pytest.mark.parametrize("name, options", SAMPLER_CASES)
def test_every_sampler_reproduces_a_gaussian_from_its_true_score(name, options):
    torch.manual_seed(5)
    model = oracle_model(steps=1000)
    n = 4000
    samples = model.sample(n, sampler=name, **options)
    mean_error = (samples.mean(0) - MEAN).abs().max()
    assert mean_error < 4 * STD / math.sqrt(n)
    covariance = torch.cov(samples.T)
    standard_error = STD ** 2 * math.sqrt(2 / n)
    assert torch.allclose(covariance, STD ** 2 * torch.eye(2, dtype=torch.float64), atol=4 * standard_error)


def test_annealed_langevin_reproduces_a_gaussian_on_the_ve_ladder():
    torch.manual_seed(6)
    model = oracle_model("ncsn", noise_levels=10, sigma_min=0.01, sigma_max=3.0)
    n = 4000
    samples = model.sample(n, steps_per_level=100, epsilon=1e-4)
    assert (samples.mean(0) - MEAN).abs().max() < 4 * STD / math.sqrt(n)
    assert torch.allclose(samples.std(0), torch.full((2,), STD, dtype=torch.float64), rtol=0.05)


def test_ddim_at_eta_one_is_the_ancestral_chain():
    model = oracle_model(steps=100)
    torch.manual_seed(7)
    ddim = model.sample(50, sampler="ddim", steps=100, eta=1.0)
    torch.manual_seed(7)
    ancestral = model.sample(50, sampler="ancestral", steps=100)
    assert torch.allclose(ddim, ancestral, atol=1e-8)


def test_sampler_options_are_checked():
    assert set(SAMPLERS) >= {"ancestral", "ddim", "ode", "dpm_solver", "euler_maruyama", "predictor_corrector",
                             "annealed_langevin"}
    with pytest.raises(ValueError, match="the samplers are ancestral, ddim"):
        make_sampler("ddpm")
    with pytest.raises(ValueError, match="options are steps, eta"):
        make_sampler("ddim", tau=1)
    with pytest.raises(ValueError, match=r"eta must lie"):
        make_sampler("ddim", eta=2.0)


def test_ncsn_loss_is_sigma_squared_weighted_denoising_score_matching():
    """NCSN's ``½ E σ²‖s(x̃, σ) + ε/σ‖²`` with ``s = −ε̂/σ`` over its ladder is half the mean squared error of
    ``ε̂`` per dimension times ``D``: the same objective, compared over many draws."""
    torch.manual_seed(8)
    model = dgm.create("ncsn", shape=(2,), noise_levels=5, sigma_max=2.0, hidden=[16]).double()
    schedule = model.schedule
    x = MEAN + STD * torch.randn(20_000, 2, dtype=torch.float64)
    times = schedule.times()

    def score(y, sigma):
        t = times[(schedule.sigma(times)[:, None] - sigma).abs().argmin(0)]
        return -model.network(y, TIME_SCALE * t) / sigma[:, None]

    with torch.no_grad():
        weighted = noise_conditional_score_matching(score, x, schedule.sigma(times))
        losses = torch.stack([model.loss(chunk)["loss"] for chunk in x.split(1000)])
    assert losses.mean() == pytest.approx((2 * weighted / 2).mean().item(), abs=4 * weighted.std().item() / 100)


def test_continuous_times_cover_the_interval_below_the_first_step():
    model = dgm.create("ddpm", shape=(2,), steps=100, times="continuous")
    torch.manual_seed(9)
    t = model.draw_times(100_000)
    assert t.min() >= 1e-5 and t.max() <= 1
    assert (t < 0.01).float().mean().item() == pytest.approx(0.01, abs=2e-3)  # uniform, not on the steps
    assert len(t.unique()) > 99_000
    with pytest.raises(ValueError, match="times='discrete'"):
        dgm.create("ddpm", shape=(2,), loss="hybrid", variance="learned", times="continuous")


def test_picture_hooks_give_the_forward_process_the_reverse_path_and_the_true_score():
    model = oracle_model(steps=100)
    x = MEAN + STD * torch.randn(5, 2, dtype=torch.float64)
    assert torch.equal(model.noised(x, 0.0), x)
    torch.manual_seed(10)
    path = model.reverse_path(7, sampler="ddim", steps=10)
    torch.manual_seed(10)
    assert [t for t, _ in path] == pytest.approx([1.0, *torch.linspace(0.9, 0.0, 10).tolist()])
    assert torch.equal(path[-1][1], model.sample(7, sampler="ddim", steps=10))
    t = torch.tensor([0.3], dtype=torch.float64)
    alpha, sigma = model.schedule.alpha(t), model.schedule.sigma(t)
    true_score = -(x - alpha * MEAN) / (alpha ** 2 * STD ** 2 + sigma ** 2)
    assert torch.allclose(model.score(x, 0.3), true_score)


def test_positional_encoding_is_nerfs_and_widens_the_mlps_input():
    from dgm.models.diffusion.networks import positional_encoding
    x = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    angles = torch.tensor([math.pi / 4, math.pi / 2, -math.pi / 2, -math.pi], dtype=torch.float64)
    expected = torch.cat([x[0], angles.sin(), angles.cos()])  # coordinate by coordinate, octave k = 0, 1 in turn
    assert torch.allclose(positional_encoding(x, 2)[0], expected)
    assert positional_encoding(x, 0) is x
    model = dgm.create("ddpm", shape=(2,), hidden=[16], input_octaves=3)
    assert model.network.layers[0].in_features == 2 * (1 + 2 * 3)
    assert model.log_prob(torch.randn(4, 2), method="ode").shape == (4,)
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="input_octaves"):
            dgm.create("ncsn", shape=(2,), input_octaves=bad)
    with pytest.raises(ValueError, match="input_octaves is an option of the MLP"):
        dgm.create("ddpm", shape=(1, 8, 8), levels=256, input_octaves=2)


class LearnedVarianceOracle(nn.Module):
    """The Gaussian oracle's ``ε̂`` beside a constant interpolation ``v`` for every entry (learned variances)."""

    def __init__(self, oracle, interpolation):
        super().__init__()
        self.oracle, self.interpolation = oracle, interpolation

    def forward(self, x_t, scaled_t, labels=None):
        epsilon = self.oracle(x_t, scaled_t)
        return torch.cat([epsilon, torch.full_like(epsilon, self.interpolation)], dim=1)


@pytest.mark.parametrize("interpolation, fixed", [(0.0, "posterior"), (1.0, "forward")])
def test_learned_variances_at_the_ends_give_the_fixed_bounds(interpolation, fixed):
    """``log Σ = v log β + (1 − v) log β̃`` per entry: ``v = 0`` is the posterior's bound, ``v = 1`` the forward one's,
    term by term (the same draws of steps and noise)."""
    learned = oracle_model(steps=20, variance="learned", loss="hybrid")
    learned.network = LearnedVarianceOracle(learned.network, interpolation)
    reference = oracle_model(steps=20, variance=fixed)
    x = MEAN + STD * torch.randn(50, 2, dtype=torch.float64)
    torch.manual_seed(5)
    bound = learned.log_prob(x, timesteps=5)
    torch.manual_seed(5)
    assert torch.allclose(bound, reference.log_prob(x, timesteps=5))


def test_hybrid_loss_trains_on_images():
    """The hybrid loss's bound term has one variance per pixel (the case that once failed to broadcast)."""
    torch.manual_seed(6)
    model = dgm.create("ddpm", shape=(1, 8, 8), levels=256, steps=20, width=8, multipliers=[1], blocks_per_level=1,
                       attention_levels=[], groups=4, variance="learned", loss="hybrid")
    losses = model.loss(torch.randint(0, 256, (6, 1, 8, 8)).float())
    assert torch.isfinite(losses["loss"]) and losses["vlb_per_dim"] > 0
    losses["loss"].backward()
    assert model.log_prob(torch.randint(0, 256, (3, 1, 8, 8)).float(), timesteps=4).shape == (3,)


def test_the_likelihood_label_follows_the_default_method():
    """NCSN's default is the probability-flow ODE, exact for vectors; DDPM's the bound; discrete data a bound."""
    assert dgm.create("ncsn", shape=(2,)).likelihood == "exact"
    assert dgm.create("ddpm", shape=(2,)).likelihood == "lower_bound"
    assert dgm.create("ncsn", shape=(1, 8, 8), levels=256, width=8, multipliers=[1], blocks_per_level=1,
                      attention_levels=[], groups=4).likelihood == "lower_bound"


@pytest.mark.parametrize("schedule", [VariancePreserving(50, "linear"), VariancePreserving(50, "cosine"),
                                      VarianceExploding(10, 0.01, 5.0)])
def test_a_time_is_found_from_its_log_snr_and_likelihood_weighting_is_its_rate(schedule):
    """``time_of_log_snr`` inverts ``log_snr``; Song et al.'s likelihood weighting ``g²/σ²`` is ``−dλ/dt``."""
    t = torch.tensor([1e-5, 0.013, 0.31, 0.57, 0.93, 1.0], dtype=torch.float64)
    assert torch.allclose(schedule.time_of_log_snr(schedule.log_snr(t), 1e-5), t, rtol=1e-9, atol=1e-12)
    inside = t[1:-1].requires_grad_()
    (rate,) = torch.autograd.grad(-schedule.log_snr(inside).sum(), inside)
    torch.testing.assert_close(rate, schedule.diffusion_squared(inside.detach()) / schedule.sigma(inside.detach()) ** 2)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_the_likelihood_loss_of_the_optimal_denoiser_is_the_closed_form_diffusion_loss(kind):
    """On data ``N(μ, s² I)`` the optimal ``ε̂`` leaves ``E‖ε − ε̂‖² = D s² e^λ / (1 + s² e^λ)`` at log-SNR ``λ``, so
    ``L_∞ = ½ D [log(1 + s² e^λ)]`` between the ends, whatever the schedule (Kingma et al., 2021): the loss must give
    that per dimension with times uniform in ``λ`` and the weight ``½ (λ(ε) − λ(1))``."""
    model = oracle_model(steps=100, schedule=kind, loss="likelihood", times="continuous")
    lowest, highest = model.log_snr_range()
    expected = 0.5 * (math.log1p(STD ** 2 * math.exp(highest)) - math.log1p(STD ** 2 * math.exp(lowest)))
    torch.manual_seed(4)
    x = MEAN + STD * torch.randn(200_000, 2, dtype=torch.float64)
    with torch.no_grad():
        losses = torch.stack([model.loss(chunk)["diffusion_loss_per_dim"] for chunk in x.split(1000)])
    assert losses.mean().item() == pytest.approx(expected, abs=4 * losses.std().item() / len(losses) ** 0.5)
    t = model.draw_times(100_000)
    assert t.min() >= 1e-5 and t.max() <= 1
    counts = torch.histc(model.schedule.log_snr(t), 10, lowest, highest)
    assert (counts - 10_000).abs().max() < 4 * 100  # uniform in log-SNR: 10 000 ± 95 per bin


def test_the_likelihood_loss_weights_each_prediction_as_its_noise_error():
    """``½ Δλ ‖ε̂ − ε‖²`` from each prediction's own squared error (factors 1, α²/σ², α²)."""
    torch.manual_seed(5)
    for prediction in ("epsilon", "x0", "v"):
        model = dgm.create("ddpm", shape=(3,), prediction=prediction, loss="likelihood", times="continuous").double()
        x0, noise, raw = torch.randn(6, 3).double(), torch.randn(6, 3).double(), torch.randn(6, 3).double()
        t = model.draw_times(6)
        x_t = model.schedule.diffuse(x0, t, noise)
        lowest, highest = model.log_snr_range()
        expected = 0.5 * (highest - lowest) * (model.interpret(raw, x_t, t).epsilon - noise).pow(2).sum(1)
        torch.testing.assert_close(model.diffusion_loss((raw - model.target(x0, noise, t)) ** 2, t), expected)
    with pytest.raises(ValueError, match="times='continuous'"):
        dgm.create("ddpm", shape=(2,), loss="likelihood")
