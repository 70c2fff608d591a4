"""Discrete VAE: Gumbel-softmax samples against the categorical, the annealing schedule, the analytic KL against
Monte Carlo, and the importance-weighted bound with exact categorical samples against the exact log p(x)."""
import math

import pytest
import torch
import torch.nn.functional as F

import dgm
from dgm.core import check_data
from dgm.models.latent.dvae import categorical_sample, gumbel_softmax

PROBABILITIES = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)


def _tiny(**options) -> dgm.GenerativeModel:
    """2 latents of 3 categories on 2x2 binary images: 9 latent codes, 16 images."""
    torch.manual_seed(0)
    options = {"latents": 2, "categories": 3, "hidden": [8]} | options
    return dgm.create("dvae", shape=(1, 2, 2), levels=2, **options).double()


def _images() -> torch.Tensor:
    return torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.float64).view(3, 1, 2, 2)


def _draws(temperature: float, n: int = 20000, hard: bool = False) -> torch.Tensor:
    torch.manual_seed(0)
    return gumbel_softmax(PROBABILITIES.log().expand(n, 3), temperature, hard)


def test_relaxed_samples_approach_one_hot_as_the_temperature_falls():
    peaks = [_draws(temperature).max(dim=1).values.mean().item() for temperature in (5.0, 1.0, 0.3, 0.05, 0.01)]
    assert peaks == sorted(peaks) and peaks[0] < 0.5 and peaks[-1] > 0.99
    torch.testing.assert_close(_draws(0.05).mean(dim=0), PROBABILITIES, atol=0.01, rtol=0)
    torch.testing.assert_close(_draws(5.0).sum(dim=1), torch.ones(20000, dtype=torch.float64))


def test_exact_and_straight_through_samples_are_categorical():
    torch.manual_seed(0)
    exact = categorical_sample(PROBABILITIES.log().expand(20000, 3))
    torch.testing.assert_close(exact.mean(dim=0), PROBABILITIES, atol=0.01, rtol=0)
    hard = _draws(1.0, hard=True)
    torch.testing.assert_close(hard, F.one_hot(hard.argmax(dim=1), 3).double())  # one-hot up to rounding
    torch.testing.assert_close(hard.mean(dim=0), PROBABILITIES, atol=0.01, rtol=0)


def test_straight_through_passes_the_relaxed_gradient():
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 3, dtype=torch.float64)
    gradients = []
    for hard in (False, True):
        torch.manual_seed(1)
        (weights * gumbel_softmax(logits, 0.7, hard)).sum().backward()
        gradients.append(logits.grad.clone())
        logits.grad = None
    torch.testing.assert_close(gradients[0], gradients[1])


def test_the_temperature_follows_the_step_clock():
    model = _tiny(temperature=2.0, temperature_min=0.5, anneal_rate=1e-3)
    for step in (0, 100, 1000, 10**5):
        assert model.temperature(step) == pytest.approx(max(0.5, 2.0 * math.exp(-1e-3 * step)))
        (_, losses), = model.training_step(_images(), step)
        assert losses["temperature"].item() == pytest.approx(model.temperature(step))
    assert model.temperature(10**5) == 0.5


def test_the_analytic_kl_equals_its_monte_carlo_estimate():
    model, x = _tiny(latents=3, categories=4), _images()
    with torch.no_grad():
        logits = model.posterior_logits(x) * 3  # a sharper posterior, far from uniform
        log_q = F.log_softmax(logits, dim=-1)
        torch.manual_seed(0)
        z = categorical_sample(logits.expand(50000, *logits.shape))
        log_ratio = (z * log_q).sum(dim=(2, 3)) + 3 * math.log(4)  # log q(z|x) − log p(z), (samples, N)
    estimate, error = log_ratio.mean(dim=0), log_ratio.std(dim=0) / math.sqrt(len(log_ratio))
    assert (model.kl(logits) > 0).all()
    assert ((model.kl(logits) - estimate).abs() < 4 * error).all()


def _exact_log_marginal(model, x: torch.Tensor) -> torch.Tensor:
    """``log Σ_z p(x | z) p(z)`` over all ``categories^latents`` one-hot codes."""
    codes = torch.cartesian_prod(*[torch.arange(model.categories)] * model.latents).view(-1, model.latents)
    z = F.one_hot(codes, model.categories).double()
    log_prior = -model.latents * math.log(model.categories)
    with torch.no_grad():
        log_joint = torch.stack([model.decoder_log_prob(xi.expand(len(z), *xi.shape), z) for xi in x], dim=1)
    return torch.logsumexp(log_joint + log_prior, dim=0)


def test_the_importance_weighted_bound_rises_with_samples_and_stays_below_log_p():
    model, x = _tiny(), _images()
    exact = _exact_log_marginal(model, x)
    repeats = 4000
    torch.manual_seed(0)
    with torch.no_grad():
        draws = {k: model.log_prob(x.repeat(repeats, 1, 1, 1), samples=k).view(repeats, len(x))
                 for k in (1, 4, 32)}
    bounds = {k: d.mean(dim=0) for k, d in draws.items()}
    errors = {k: d.std(dim=0) / math.sqrt(repeats) for k, d in draws.items()}
    assert (bounds[1] < bounds[4]).all() and (bounds[4] < bounds[32]).all()
    assert (bounds[32] <= exact + 4 * errors[32]).all()
    assert (exact - bounds[32] < exact - bounds[1]).all()


def test_the_evaluation_elbo_is_the_one_sample_bound():
    model, x = _tiny(), _images()
    torch.manual_seed(0)
    with torch.no_grad():
        bound = model.log_prob(x.repeat(4000, 1, 1, 1)).mean()
        losses = model.loss(x.repeat(4000, 1, 1, 1))
    assert losses["loss"].item() == pytest.approx(-bound.item(), abs=0.05)
    torch.testing.assert_close(losses["loss"], losses["reconstruction"] + losses["kl"])


def test_only_the_relaxed_objective_sends_the_reconstruction_gradient_to_the_encoder():
    model, x = _tiny(), _images()
    model.loss(x)["reconstruction"].backward()  # exact samples: the argmax has no gradient
    assert all(parameter.grad is None for parameter in model.encoder.parameters())
    next(model.training_step(x, 0))[1]["reconstruction"].backward()
    assert all(parameter.grad.abs().sum() > 0 for parameter in model.encoder.parameters())


@pytest.mark.parametrize("options", [{}, {"hard": True}, {"network": "conv", "widths": [4, 4]}])
def test_a_trained_model_samples_images(options):
    model = _tiny(**options)
    x = torch.randint(0, 2, (32, 1, 2, 2), generator=torch.Generator().manual_seed(0)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(5):
        (_, losses), = model.training_step(x, step)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    for decoder_noise in (True, False):
        assert check_data(model.sample(6, decoder_noise=decoder_noise), (1, 2, 2), 2).shape == (6, 1, 2, 2)
    assert model.latent_codes(x).shape == (32, 2)


def test_decode_reads_the_codes_of_latent_codes():
    model, x = _tiny(), _images()
    codes = model.latent_codes(x)
    z = F.one_hot(model.posterior_logits(x).argmax(dim=-1), 3).double()
    expected = model.head.mean(model.decoder(z.flatten(1))).round()
    assert torch.equal(model.decode(codes, decoder_noise=False), expected)
    with pytest.raises(ValueError, match="codes"):
        model.decode(codes + 0.5)
    diagnostics = model.latent_diagnostics(x)
    kl = model.kl_per_latent(model.posterior_logits(x)).mean(dim=0)
    assert diagnostics["kl_per_latent"] == pytest.approx(kl.tolist())
    assert diagnostics["kl"] == pytest.approx(model.kl(model.posterior_logits(x)).mean().item())


def test_bad_options_are_refused():
    for options in ({"network": "transformer"}, {"temperature_min": 0.0}, {"temperature": 0.1}):
        with pytest.raises(ValueError):
            dgm.create("dvae", shape=(1, 2, 2), levels=2, **options)
    with pytest.raises(ValueError, match="images"):
        dgm.create("dvae", shape=(4,), levels=2)
