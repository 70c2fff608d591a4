"""The VAE's mathematics: closed-form KL and Gaussian NLL (the course's test values), the ELBO and ``L_K`` on
probabilistic PCA where ``log p(x)`` is exact, decoders that are probability distributions, flow posteriors whose
``log q`` is their density, priors that integrate to one, and the objectives' schedules."""
import itertools
import math

import pytest
import torch
from torch import nn

import dgm
from dgm.data.base import Data
from dgm.distributions import normal_kl
from dgm.distributions.functional import normal_log_density
from dgm.training import fit

torch.set_default_dtype(torch.float32)


def linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


# -- closed forms: the course's get_normal_KL and get_normal_nll ------------------------------------------------------
def test_normal_kl_matches_the_course_values():
    assert normal_kl(torch.tensor(2.0), torch.tensor(3.0)).item() == pytest.approx(200.2144, rel=1e-5)
    assert normal_kl(torch.tensor(2.0), torch.tensor(3.0), torch.tensor(4.0), torch.tensor(5.0)).item() == \
        pytest.approx(1.50925, rel=1e-4)
    values = normal_kl(torch.tensor([10.0, 10.0]), torch.tensor([2.0, 4.0]), torch.tensor([3.0, 5.0]))
    assert values.tolist() == pytest.approx([49.2990, 1498.479], rel=1e-5)


def test_gaussian_nll_matches_the_course_values():
    nll = -normal_log_density(torch.tensor([2.0, 5.0, 10.0, 10.0]), torch.tensor([2.0, -3.0, 2.0, 4.0]),
                              torch.tensor([3.0, 6.0, 3.0, 5.0]))
    assert nll.tolist() == pytest.approx([3.9189, 6.9191, 3.9982, 5.9197], rel=1e-4)


def test_analytic_kl_equals_its_monte_carlo_estimate():
    torch.manual_seed(0)
    loc, log_scale = torch.randn(3, dtype=torch.float64), 0.5 * torch.randn(3, dtype=torch.float64)
    z = loc + torch.exp(log_scale) * torch.randn(200_000, 3, dtype=torch.float64)
    terms = (normal_log_density(z, loc, log_scale) - normal_log_density(z, 0.0, torch.zeros(()))).sum(dim=1)
    stderr = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - normal_kl(loc, log_scale).sum()) < 4 * stderr


# -- probabilistic PCA: a linear-Gaussian VAE whose log p(x) is exact -------------------------------------------------
D, M = 4, 2


def ppca_parameters(seed: int = 0):
    """W with orthogonal columns (the maximum-likelihood form with R = I, Bishop eq. 12.45), μ and σ²: the exact
    posterior N(M⁻¹Wᵀ(x − μ), σ² M⁻¹), M = WᵀW + σ²I, is then diagonal."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(D, D, generator=generator, dtype=torch.float64))
    w = basis[:, :M] * torch.tensor([2.0, 1.2], dtype=torch.float64)
    mu = torch.randn(D, generator=generator, dtype=torch.float64)
    return w, mu, 0.3


def exact_log_p(x, w, mu, sigma2):
    covariance = w @ w.T + sigma2 * torch.eye(D, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(mu, covariance).log_prob(x)


def linear_gaussian_vae(w, mu, sigma2, posterior_shift: float = 0.0, posterior_log_scale_shift: float = 0.0):
    """A VAE with a linear encoder set to the exact posterior of PPCA (shifted to make it inexact) and a linear
    Gaussian decoder N(Wz + μ, σ² I)."""
    vae = dgm.create("vae", shape=(D,), latent_dim=M, hidden=[]).double()
    encoder, = linear_layers(vae.posterior.network)
    decoder, = linear_layers(vae.decoder.network)
    m_inverse = torch.linalg.inv(w.T @ w + sigma2 * torch.eye(M, dtype=torch.float64))
    with torch.no_grad():
        encoder.weight.copy_(torch.cat([m_inverse @ w.T, torch.zeros(M, D, dtype=torch.float64)]))
        posterior_log_scale = 0.5 * torch.log(sigma2 * torch.diagonal(m_inverse)) + posterior_log_scale_shift
        encoder.bias.copy_(torch.cat([-m_inverse @ w.T @ mu + posterior_shift, posterior_log_scale]))
        decoder.weight.copy_(torch.cat([w, torch.zeros(D, M, dtype=torch.float64)]))
        decoder.bias.copy_(torch.cat([mu, torch.full((D,), 0.5 * math.log(sigma2), dtype=torch.float64)]))
    return vae


@pytest.fixture
def ppca_data():
    w, mu, sigma2 = ppca_parameters()
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(50, M, generator=generator, dtype=torch.float64)
    x = z @ w.T + mu + math.sqrt(sigma2) * torch.randn(50, D, generator=generator, dtype=torch.float64)
    return x, (w, mu, sigma2)


def test_with_the_exact_posterior_the_elbo_is_log_p(ppca_data):
    x, parameters = ppca_data
    vae = linear_gaussian_vae(*parameters)
    torch.manual_seed(0)
    assert torch.allclose(vae.log_prob(x), exact_log_p(x, *parameters), atol=1e-6, rtol=0)
    loss = vae.loss(x)  # the analytic-KL ELBO: its one-sample reconstruction term is noisy, its mean is log p
    assert loss["loss"].item() == pytest.approx(-exact_log_p(x, *parameters).mean().item(), abs=0.5)


def test_with_another_posterior_the_elbo_lies_below_log_p_for_every_x(ppca_data):
    x, parameters = ppca_data
    vae = linear_gaussian_vae(*parameters, posterior_shift=0.3, posterior_log_scale_shift=-0.4)
    torch.manual_seed(0)
    draws = vae.log_importance_weights(x, vae.encode(x), 4000)  # one-sample ELBOs, (K, N)
    elbo, stderr = draws.mean(dim=0), draws.std(dim=0) / math.sqrt(len(draws))
    gap = exact_log_p(x, *parameters) - elbo
    assert (gap > 5 * stderr).all()


def test_l_k_rises_with_k_and_converges_to_log_p(ppca_data):
    x, parameters = ppca_data
    x = x[:10]  # a posterior wider than the exact one: bounded weights, so L_K approaches log p at the rate 1/K
    vae = linear_gaussian_vae(*parameters, posterior_shift=0.3, posterior_log_scale_shift=0.3)
    log_p = exact_log_p(x, *parameters)
    torch.manual_seed(0)
    estimates = {k: torch.stack([vae.log_prob(x, samples=k) for _ in range(200 if k < 1000 else 40)])
                 for k in (1, 10, 1000)}
    means = {k: draws.mean(dim=0) for k, draws in estimates.items()}
    errors = {k: draws.std(dim=0) / math.sqrt(len(draws)) for k, draws in estimates.items()}
    assert (means[10] - means[1] > 3 * (errors[1] + errors[10])).all()
    assert (means[1000] - means[10] > -3 * (errors[10] + errors[1000])).all()
    assert (means[1000] <= log_p + 3 * errors[1000]).all()
    assert ((log_p - means[1000]).abs() < 5 * errors[1000] + 1e-3).all()
    spreads = {k: draws.std(dim=0).mean().item() for k, draws in estimates.items()}
    assert spreads[1000] < spreads[10] < spreads[1]  # a single draw of L_K tightens as K grows


# -- decoders are distributions ---------------------------------------------------------------------------------------
def all_images(levels: int, shape=(1, 2, 2)) -> torch.Tensor:
    cells = math.prod(shape)
    return torch.tensor(list(itertools.product(range(levels), repeat=cells)), dtype=torch.float64).view(-1, *shape)


@pytest.mark.parametrize("levels, options", [(2, {}), (3, {"output": "categorical"}), (3, {"output": "logistic"}),
                                             (3, {"output": "gaussian"}),
                                             (3, {"output": "gaussian", "decoder_scale": "fixed"}),
                                             (2, {"decoder": "pixelcnn", "pixelcnn_kernel": 3})])
def test_every_decoder_likelihood_sums_to_one_over_its_values(levels, options):
    torch.manual_seed(0)
    vae = dgm.create("vae", shape=(1, 2, 2), levels=levels, latent_dim=2, hidden=[8], **options).double()
    images = all_images(levels)
    z = torch.randn(1, 2, dtype=torch.float64).expand(len(images), 2)
    total = torch.logsumexp(vae.decoder.log_prob(images, z), dim=0).exp()
    assert total.item() == pytest.approx(1.0, abs=1e-10)


# -- flow posteriors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("posterior", ["iaf", "planar"])
def test_a_flow_posteriors_log_q_is_its_density(posterior):
    """log q of each draw equals the base density of the flow's preimage plus the normalizing log-determinant."""
    torch.manual_seed(0)
    vae = dgm.create("vae", shape=(3,), latent_dim=3, hidden=[8], posterior=posterior, posterior_layers=3).double()
    for parameter in vae.posterior.flow.parameters():  # leave the identity start
        nn.init.normal_(parameter, std=0.3)
    x = torch.randn(5, 3, dtype=torch.float64)
    encoding = vae.encode(x)
    z, log_q = vae.posterior.rsample(encoding, 4)
    z0, log_det = vae.posterior.flow(z.reshape(-1, 3), encoding.context.repeat(4, 1))
    expected = normal_log_density(z0, encoding.loc.repeat(4, 1), encoding.log_scale.repeat(4, 1)).sum(1) + log_det
    assert torch.allclose(log_q.reshape(-1), expected, atol=1e-8)


# -- priors --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", ["standard", "mog", "vamp", "realnvp", "maf", "arf"])
def test_every_prior_integrates_to_one(prior):
    torch.manual_seed(0)
    vae = dgm.create("vae", shape=(3,), latent_dim=2, hidden=[8], prior=prior, prior_components=3).double()
    for parameter in vae.prior.parameters():  # a prior away from its initial state
        parameter.data += 0.05 * torch.randn_like(parameter)
    grid = torch.linspace(-9, 9, 601, dtype=torch.float64)
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = vae.prior.log_prob(points).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=2e-3)
    assert vae.prior.sample(7).shape == (7, 2)


def test_the_vampprior_is_the_mixture_of_the_pseudo_inputs_posteriors():
    torch.manual_seed(0)
    vae = dgm.create("vae", shape=(1, 4, 4), levels=2, latent_dim=3, hidden=[8], prior="vamp",
                     prior_components=4).double()
    z = torch.randn(6, 3, dtype=torch.float64)
    encoding = vae.posterior.encode(vae.prior.pseudo_inputs())
    by_hand = torch.stack([normal_log_density(z, encoding.loc[k], encoding.log_scale[k]).sum(1).exp()
                           for k in range(4)]).mean(0).log()
    assert torch.allclose(vae.prior.log_prob(z), by_hand, atol=1e-12)


# -- objectives ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_images():
    torch.manual_seed(0)
    return (torch.rand(32, 1, 4, 4) < 0.3).double()


def test_kl_warm_up_follows_the_step_clock(tiny_images):
    vae = dgm.create("vae", shape=(1, 4, 4), levels=2, hidden=[8], beta=2.0, warmup_steps=10).double()
    betas = [next(vae.training_step(tiny_images, step))[1]["beta"].item() for step in (0, 5, 10, 20)]
    assert betas == [0.0, 1.0, 2.0, 2.0]


def test_free_bits_stop_the_gradient_of_dimensions_below_the_threshold(tiny_images):
    """With every dimension's KL below λ the KL term is the constant λ · latent_dim: only the reconstruction
    pulls on the encoder."""
    vae = dgm.create("vae", shape=(1, 4, 4), levels=2, latent_dim=3, hidden=[8], free_bits=100.0).double()
    _, losses = next(vae.training_step(tiny_images, 0))
    encoder = linear_layers(vae.posterior.network)[-1]
    total, = torch.autograd.grad(losses["loss"], encoder.weight, retain_graph=True)
    reconstruction, = torch.autograd.grad(losses["reconstruction"], encoder.weight)
    assert torch.equal(total, reconstruction)
    assert losses["loss"].item() == pytest.approx(losses["reconstruction"].item() + 300.0, rel=1e-12)


def test_the_iwae_objective_is_minus_l_k(tiny_images):
    vae = dgm.create("vae", shape=(1, 4, 4), levels=2, hidden=[8], iwae_samples=5).double()
    torch.manual_seed(3)
    _, losses = next(vae.training_step(tiny_images, 0))
    torch.manual_seed(3)
    assert losses["loss"].item() == pytest.approx(-vae.log_prob(tiny_images, samples=5).mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match="takes no beta"):
        dgm.create("vae", shape=(1, 4, 4), levels=2, iwae_samples=5, beta=2.0)


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_the_dip_penalty_is_its_formula(tiny_images, variant):
    vae = dgm.create("vae", shape=(1, 4, 4), levels=2, latent_dim=3, hidden=[8], dip=variant, dip_lambda=2.0)
    vae = vae.double()
    encoding = vae.encode(tiny_images)
    covariance = torch.cov(encoding.loc.T)
    if variant == "ii":
        covariance = covariance + torch.diag(encoding.log_scale.mul(2).exp().mean(0))
    diagonal_weight = 20.0 if variant == "i" else 2.0
    off = covariance - torch.diag(torch.diagonal(covariance))
    expected = 2.0 * off.pow(2).sum() + diagonal_weight * (torch.diagonal(covariance) - 1).pow(2).sum()
    assert vae._dip_penalty(encoding).item() == pytest.approx(expected.item(), rel=1e-10)


def test_bad_options_are_refused_with_their_name():
    for options, message in [({"prior": "gauss"}, "prior must be one of"), ({"posterior": "nf"}, "posterior must"),
                             ({"encoder": "conv"}, "needs images"), ({"output": "bernoulli"}, "discrete data"),
                             ({"beta": 0}, "beta must be a positive"), ({"dip": "iii"}, "dip must be"),
                             ({"prior": "vamp", "posterior": "iaf"}, "VampPrior")]:
        with pytest.raises(ValueError, match=message):
            dgm.create("vae", shape=(3,), **options)


# -- training, evaluation, save and load ----------------------------------------------------------------------------------
def test_a_vae_on_2d_data_bounds_the_entropy_from_above(tmp_path):
    """The test NLL bound estimates the cross-entropy plus a gap, so it lies above the data's exact entropy."""
    data = dgm.data.load("8gaussians")
    vae = dgm.create("vae", data=data, latent_dim=2, hidden=[64, 64])
    run = fit(vae, data, tmp_path / "run", max_steps=300, batch_size=256, progress=False)
    with torch.no_grad():
        nll = -run.model.log_prob(data.test[:2000], samples=100)
    entropy = data.distribution.entropy()
    assert nll.mean().item() > entropy - 3 * nll.std().item() / math.sqrt(len(nll))
    assert nll.mean().item() < entropy + 3.0  # it learned something: N(0, 16 I) would score 5.6 + ...


def test_save_and_load_give_the_same_bound(tmp_path):
    data = Data("tiny", (torch.rand(64, 1, 4, 4) < 0.5).float(), (torch.rand(16, 1, 4, 4) < 0.5).float(), levels=2)
    vae = dgm.create("vae", data=data, hidden=[8], prior="vamp", prior_components=3)
    vae.save(tmp_path / "model")
    loaded = dgm.load(tmp_path / "model")
    torch.manual_seed(0)
    first = vae.log_prob(data.test, samples=3)
    torch.manual_seed(0)
    assert torch.equal(first, loaded.log_prob(data.test, samples=3))
