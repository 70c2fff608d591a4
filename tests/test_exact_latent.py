"""The exact latent-variable models, the Gaussian mixture and probabilistic PCA: their densities against scipy, their
posteriors against Bayes' rule, EM's monotone log-likelihood and its fixed points, and online EM through the trainer
(the ground truth of the bound tests of VAEs)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import dgm
from dgm.checkpoint import load_state
from dgm.recipes import load_recipe
from dgm.training.fit import fit

# -- Gaussian mixture ------------------------------------------------------------------------------------------------


def random_gmm(dim: int = 3, components: int = 4, seed: int = 0, covariance: str = "full"):
    """A float64 Gaussian mixture with random weights, means and covariances (a diagonal covariance keeps only the
    diagonal of its random Cholesky factor)."""
    generator = torch.Generator().manual_seed(seed)
    model = dgm.create("gmm", shape=(dim,), components=components, covariance=covariance).double()
    scale_tril = torch.randn(components, dim, dim, generator=generator, dtype=torch.float64).tril(-1) * 0.3
    scale_tril = scale_tril + torch.diag_embed(0.5 + torch.rand(components, dim, generator=generator,
                                                                  dtype=torch.float64))
    if covariance == "diagonal":
        scale_tril = torch.diag_embed(scale_tril.diagonal(dim1=1, dim2=2))
    with torch.no_grad():
        model.log_weights.copy_(torch.log_softmax(torch.randn(components, generator=generator), 0).double())
        model.means.copy_(2 * torch.randn(components, dim, generator=generator, dtype=torch.float64))
        model.scale_tril.copy_(scale_tril)
    return model


def scipy_components(model) -> list:
    covariances = model.scale_tril @ model.scale_tril.mT
    return [multivariate_normal(mean.numpy(), covariance.numpy()) for mean, covariance in zip(model.means,
                                                                                              covariances)]


def test_gmm_log_prob_is_the_weighted_sum_of_the_component_densities():
    model = random_gmm()
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    densities = np.stack([component.pdf(x.numpy()) for component in scipy_components(model)], axis=1)
    expected = np.log(densities @ model.log_weights.exp().numpy())
    np.testing.assert_allclose(model.log_prob(x).numpy(), expected, rtol=0, atol=1e-10)


def test_gmm_posterior_is_bayes_rule():
    model = random_gmm()
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    joint = np.stack([component.pdf(x.numpy()) for component in scipy_components(model)], axis=1)
    joint = joint * model.log_weights.exp().numpy()
    responsibilities = model.posterior(x)
    assert responsibilities.shape == (50, 4)
    np.testing.assert_allclose(responsibilities.sum(dim=1).numpy(), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(responsibilities.numpy(), joint / joint.sum(axis=1, keepdims=True), rtol=0, atol=1e-10)


def test_gmm_samples_have_the_component_frequencies_and_means():
    """Over samples of the model, E[p(k|x)] = π_k and E[p(k|x) x] = π_k μ_k: checked within 5 Monte Carlo standard
    errors, without telling which component drew each sample."""
    model = random_gmm(dim=2, components=3, seed=3)
    torch.manual_seed(0)
    x = model.sample(100_000)
    responsibilities = model.posterior(x)
    weights = model.log_weights.exp()
    error = responsibilities.std(dim=0) / math.sqrt(len(x))
    assert ((responsibilities.mean(dim=0) - weights).abs() < 5 * error).all()
    weighted = responsibilities.unsqueeze(2) * x.unsqueeze(1)  # p(k|x) x, (N, K, D)
    error = weighted.std(dim=0) / math.sqrt(len(x))
    assert ((weighted.mean(dim=0) - weights.unsqueeze(1) * model.means).abs() < 5 * error).all()


def eight_gaussians(n: int = 2000) -> torch.Tensor:
    return dgm.data.load("8gaussians", n_train=n, n_test=1).train.double()


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_gmm_em_never_lowers_the_log_likelihood(covariance):
    x = eight_gaussians()
    model = dgm.create("gmm", shape=(2,), components=5, covariance=covariance).double()
    history = model.fit_em(x, iterations=60, tolerance=-math.inf)
    assert len(history) == 60 and history[-1] > history[0] + 0.1
    assert min(np.diff(history)) > -1e-10
    assert history[-1] == pytest.approx(model.log_prob(x).mean().item(), abs=1e-12)


def test_gmm_em_stays_monotone_when_a_component_collapses_onto_repeated_points():
    """A component on 100 copies of one point would shrink to a point; the floor of its covariance's eigenvalues
    keeps the likelihood finite and EM monotone."""
    x = torch.cat([eight_gaussians(), torch.full((100, 2), 0.3, dtype=torch.float64)])
    model = dgm.create("gmm", shape=(2,), components=9).double()
    history = model.fit_em(x, iterations=60, tolerance=-math.inf)
    eigenvalues = torch.linalg.eigvalsh(model.scale_tril @ model.scale_tril.mT)
    assert eigenvalues.min() == pytest.approx(model.variance_floor.item(), rel=1e-6)
    assert np.isfinite(history).all() and min(np.diff(history)) > -1e-10


def test_gmm_em_recovers_well_separated_components():
    truth = random_gmm(dim=2, components=3, seed=4)
    with torch.no_grad():
        truth.means.copy_(torch.tensor([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]], dtype=torch.float64))
    torch.manual_seed(1)
    x = truth.sample(20_000)
    model = dgm.create("gmm", shape=(2,), components=3, seed=1).double()
    history = model.fit_em(x, iterations=200)
    assert len(history) < 200  # converged
    order = torch.cdist(truth.means, model.means).argmin(dim=1)  # the fitted component nearest each true one
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(model.log_weights.exp()[order], truth.log_weights.exp(), atol=0.02, rtol=0)
    torch.testing.assert_close(model.means[order], truth.means, atol=0.05, rtol=0)
    fitted, true = (m.scale_tril @ m.scale_tril.mT for m in (model, truth))
    torch.testing.assert_close(fitted[order], true, atol=0.05, rtol=0.05)


# -- probabilistic PCA -----------------------------------------------------------------------------------------------


def random_ppca(dim: int = 4, latent_dim: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    model = dgm.create("ppca", shape=(dim,), latent_dim=latent_dim).double()
    with torch.no_grad():
        model.W.copy_(torch.randn(dim, latent_dim, generator=generator, dtype=torch.float64))
        model.mu.copy_(torch.randn(dim, generator=generator, dtype=torch.float64))
        model.sigma2.fill_(0.3)
    return model


def ppca_data(n: int = 2000, seed: int = 1) -> torch.Tensor:
    """Samples of a PPCA with D = 4, M = 2 (its parameters differ from those fitted)."""
    torch.manual_seed(seed)
    return random_ppca(seed=5).sample(n)


def test_ppca_log_prob_is_the_gaussian_marginal():
    model = random_ppca()
    x = ppca_data(50)
    covariance = model.W @ model.W.T + model.sigma2 * torch.eye(4, dtype=torch.float64)
    expected = multivariate_normal(model.mu.numpy(), covariance.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_prob(x).numpy(), expected, rtol=0, atol=1e-10)


def test_ppca_joint_is_likelihood_times_prior():
    model = random_ppca()
    x, z = ppca_data(20), torch.randn(20, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    residual = (x - z @ model.W.T - model.mu).numpy()
    expected = (multivariate_normal(np.zeros(4), model.sigma2.item() * np.eye(4)).logpdf(residual)
                + multivariate_normal(np.zeros(2)).logpdf(z.numpy()))
    np.testing.assert_allclose(model.joint_log_prob(x, z).numpy(), expected, rtol=0, atol=1e-10)


def test_ppca_posterior_is_bayes_rule():
    """log p(x) = log p(x, z) − log p(z | x) for every z."""
    model = random_ppca()
    x = ppca_data(50)
    mean, covariance = model.posterior(x)
    assert mean.shape == (50, 2) and covariance.shape == (2, 2)
    torch.testing.assert_close(model.latent_codes(x), mean, atol=0, rtol=0)
    for seed in range(3):
        z = 3 * torch.randn(50, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        log_posterior = torch.distributions.MultivariateNormal(mean, covariance).log_prob(z)
        torch.testing.assert_close(model.joint_log_prob(x, z) - log_posterior, model.log_prob(x), atol=1e-10, rtol=0)


def test_ppca_closed_form_is_a_stationary_point_of_em_and_of_the_likelihood():
    x = ppca_data()
    model = dgm.create("ppca", shape=(4,), latent_dim=2).double()
    best = model.fit_closed_form(x)
    fitted = {name: getattr(model, name).clone() for name in ("W", "mu", "sigma2")}
    history = model.fit_em(x, iterations=1)
    for name, value in fitted.items():
        torch.testing.assert_close(getattr(model, name), value, atol=1e-8, rtol=0)
    assert history[0] == pytest.approx(best, abs=1e-10)
    parameters = [getattr(model, name).requires_grad_() for name in fitted]
    gradients = torch.autograd.grad(model.log_prob(x).mean(), parameters)
    assert max(gradient.abs().max().item() for gradient in gradients) < 1e-8


def test_ppca_em_never_lowers_the_log_likelihood_and_reaches_the_closed_form():
    x = ppca_data()
    exact = dgm.create("ppca", shape=(4,), latent_dim=2).double()
    best = exact.fit_closed_form(x)
    model = dgm.create("ppca", shape=(4,), latent_dim=2, seed=2).double()
    history = model.fit_em(x, iterations=1000, tolerance=1e-13)
    assert len(history) < 1000 and min(np.diff(history)) > -1e-10
    assert history[-1] == pytest.approx(best, abs=1e-9)
    torch.testing.assert_close(model.covariance(), exact.covariance(), atol=1e-5, rtol=0)
    assert best >= max(history) - 1e-12


# -- both: the trainer (online EM) and the model format --------------------------------------------------------------


@pytest.mark.parametrize("name", ["gmm", "ppca"])
def test_save_and_load_give_the_same_log_prob(name, tmp_path):
    model = random_gmm(dim=2, components=3) if name == "gmm" else random_ppca(dim=2, latent_dim=1)
    model.float().save(tmp_path)
    loaded = dgm.load(tmp_path)
    x = torch.randn(10, 2)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


@pytest.mark.parametrize("name, data_name, options", [("gmm", "8gaussians", {}),
                                                      ("ppca", "gaussians-2d", {"mode": "rotated"})])
def test_online_em_through_the_trainer_approaches_batch_em(name, data_name, options, tmp_path):
    data = dgm.data.load(data_name, n_train=4000, n_test=4000, **options)
    model = dgm.create(name, data=data)
    assert model.optimizer_groups() == []
    run = fit(model, data, tmp_path / "run", max_epochs=3, batch_size=256, progress=False)  # 48 online EM steps
    reference = dgm.create(name, data=data).double()
    reference.fit_em(data.train.double()) if name == "gmm" else reference.fit_closed_form(data.train.double())
    test_nll = -run.model.log_prob(data.test).mean().item()
    assert test_nll == pytest.approx(-reference.log_prob(data.test.double()).mean().item(), abs=0.02)
    loaded = dgm.load(run.directory)
    assert torch.equal(loaded.log_prob(data.test), run.model.log_prob(data.test))


def test_online_em_resumes_exactly_from_a_checkpoint(tmp_path):
    data = dgm.data.load("8gaussians", n_train=1000, n_test=100)
    straight = fit(dgm.create("gmm", data=data), data, tmp_path / "straight", max_epochs=2, batch_size=100,
                   progress=False)
    fit(dgm.create("gmm", data=data), data, tmp_path / "resumed", max_epochs=1, batch_size=100, progress=False)
    resumed = fit(dgm.load(tmp_path / "resumed"), data, tmp_path / "resumed", max_epochs=2, batch_size=100,
                  resume=True, progress=False)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


@pytest.mark.parametrize("recipe", ["gmm-8gaussians", "ppca-gaussians-rotated"])
def test_the_recipes_stop_by_epochs(recipe):
    """A model trained by EM takes no optimizer step, and max_steps counts optimizer steps: it would never stop."""
    plan = load_recipe(recipe)
    model = dgm.create(plan["model"], data=dgm.data.load(plan["data"], n_train=10, n_test=10, **plan["data_options"]),
                       **plan["model_options"])
    assert model.optimizer_groups() == [] and "max_steps" not in plan["train"] and plan["train"]["max_epochs"] > 0


def test_max_steps_counts_the_batches_of_a_model_that_updates_itself(tmp_path):
    data = dgm.data.load("8gaussians")
    run = fit(dgm.create("gmm", data=data), data, tmp_path / "run", max_steps=7, batch_size=500, progress=False)
    assert load_state(run.directory / "checkpoints" / "last.safetensors")["batches_trained"] == 7


def test_an_ema_or_several_devices_are_refused_for_em(tmp_path):
    data = dgm.data.load("8gaussians")
    with pytest.raises(ValueError, match="no weights to average"):
        fit(dgm.create("gmm", data=data), data, tmp_path / "a", ema_decay=0.9, max_steps=2, progress=False)
    with pytest.raises(ValueError, match="one device"):
        fit(dgm.create("ppca", data=data), data, tmp_path / "b", devices=2, max_steps=2, progress=False)
