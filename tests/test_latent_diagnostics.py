"""The latent diagnostics of a VAE (lectures 4 and 7): the KL per dimension adds up to the KL term, active units count
exactly the dimensions an encoder uses, ELBO surgery finds I = 0 for a posterior that ignores x, log N for posteriors
far apart and the value of numerical integration in between, collapse is flagged; the pictures of runs.py and the
printing of `dgm train` / `dgm evaluate`."""
import json
import math

import pytest
import torch
from torch import nn

import dgm
from dgm.cli import main
from dgm.data import load
from dgm.distributions import normal_kl
from dgm.models.latent import diagnostics
from dgm.runs import write_pictures

PNG = b"\x89PNG\r\n\x1a\n"


def vae(latent_dim: int = 3, dims: int = 2, **options):
    torch.manual_seed(0)
    return dgm.create("vae", shape=(dims,), latent_dim=latent_dim, hidden=[16], **options).double()


def data(n: int = 200, dims: int = 2) -> torch.Tensor:
    return torch.randn(n, dims, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def last_linear(model) -> nn.Linear:
    """The encoder's output layer: rows ``0..latent_dim-1`` give the mean, the next ``latent_dim`` the log-scale."""
    return [module for module in model.posterior.network.modules() if isinstance(module, nn.Linear)][-1]


def fixed_posterior(model, loc, log_scale, weight: float = 0.0) -> None:
    """Replace the encoder by a linear map: ``μ(x) = weight · x[:latent_dim] + loc``, ``log σ(x) = log_scale``."""
    d, dims = model.latent_dim, model.shape[0]
    layer = nn.Linear(dims, 2 * d).double()
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:d, :d] = weight * torch.eye(d, dims, dtype=torch.float64)[:, :d]
        layer.bias.copy_(torch.cat([torch.as_tensor(loc, dtype=torch.float64).expand(d),
                                    torch.as_tensor(log_scale, dtype=torch.float64).expand(d)]))
    model.posterior.network = layer


# -- KL per dimension -------------------------------------------------------------------------------------------------
def test_kl_per_dimension_adds_up_to_the_kl_term_of_the_loss():
    model, x = vae(latent_dim=4), data()
    per_dimension = diagnostics.kl_per_dimension(model, x)
    assert per_dimension.shape == (4,) and (per_dimension >= 0).all()
    assert per_dimension.sum().item() == pytest.approx(model.loss(x)["kl"].item(), rel=1e-12)
    encoding = model.encode(x)
    assert per_dimension.tolist() == pytest.approx(normal_kl(encoding.loc, encoding.log_scale).mean(0).tolist())
    assert diagnostics.average_kl(model, x) == (pytest.approx(per_dimension.sum().item(), rel=1e-12), 0.0)


@pytest.mark.parametrize("options", [{"posterior": "iaf", "posterior_layers": 1}, {"prior": "mog"}])
def test_kl_per_dimension_is_undefined_without_factorised_posterior_and_prior(options):
    model, x = vae(**options), data(100)
    assert diagnostics.kl_per_dimension(model, x) is None
    torch.manual_seed(0)
    kl, error = diagnostics.average_kl(model, x, samples=64)
    torch.manual_seed(1)
    estimates = model.elbo_terms(x.repeat(64, 1))[1]  # one-sample estimates of the same KL
    assert 0 < error < 0.1 * abs(kl) and kl == pytest.approx(estimates.mean().item(), abs=5 * error)


# -- active units -----------------------------------------------------------------------------------------------------
def test_active_units_count_the_dimensions_the_encoder_uses():
    model, x = vae(latent_dim=5), data()
    layer = last_linear(model)
    with torch.no_grad():
        layer.weight[:5] *= 20  # the used means vary well above A_u = 0.01 ...
        layer.weight[[1, 3]] = 0.0  # ... and dimensions 1 and 3 ignore x
    activity = diagnostics.unit_activity(model, x)
    assert activity[[1, 3]].tolist() == [0.0, 0.0] and (activity[[0, 2, 4]] > 0.01).all()
    assert diagnostics.active_units(model, x) == 3
    assert diagnostics.active_units(model, x, threshold=math.inf) == 0
    expected = model.latent_codes(x).var(dim=0, correction=0)
    assert activity.tolist() == pytest.approx(expected.tolist(), rel=1e-12)


def test_activity_of_a_flow_posterior_subtracts_the_noise_of_its_monte_carlo_mean():
    """An IAF posterior that ignores x has A_u = 0; the mean of K = 32 draws alone would vary by about σ²/K ≈ 0.03
    between examples and count every unit active."""
    model, x = vae(latent_dim=3, posterior="iaf", posterior_layers=1), data(1000)
    with torch.no_grad():
        last_linear(model).weight.zero_()  # mean, scale and the flow's context no longer depend on x
    torch.manual_seed(0)
    activity = diagnostics.unit_activity(model, x)
    assert activity.abs().max() < 0.005 and diagnostics.active_units(model, x) == 0
    with torch.no_grad():
        last_linear(model).weight[0] = 5.0  # the first unit's base mean moves with x
    assert diagnostics.active_units(model, x) >= 1


# -- ELBO surgery -----------------------------------------------------------------------------------------------------
def test_surgery_of_a_posterior_that_ignores_x_puts_the_whole_kl_in_the_marginal():
    model, x = vae(latent_dim=2), data(300)
    fixed_posterior(model, loc=0.7, log_scale=-0.4)
    torch.manual_seed(0)
    surgery = diagnostics.elbo_surgery(model, x, samples=500)
    kl = 2 * normal_kl(torch.tensor(0.7, dtype=torch.float64), torch.tensor(-0.4, dtype=torch.float64)).item()
    assert surgery["average_kl_nats"] == pytest.approx(kl, rel=1e-12)
    assert abs(surgery["mutual_information_nats"]) < 1e-9  # every term is log q(z|x) − log q(z) = 0
    assert surgery["marginal_kl_nats"] == pytest.approx(kl, rel=1e-9)
    assert surgery["mutual_information_limit_nats"] == pytest.approx(math.log(300))


def test_surgery_of_posteriors_far_apart_reaches_log_n():
    model, x = vae(latent_dim=2), data(64)
    fixed_posterior(model, loc=0.0, log_scale=-6.0, weight=100.0)  # means 100 x, scales e^-6
    torch.manual_seed(0)
    surgery = diagnostics.elbo_surgery(model, x, samples=400)
    information, limit = surgery["mutual_information_nats"], surgery["mutual_information_limit_nats"]
    assert limit == pytest.approx(math.log(64))
    assert limit - 1e-3 < information <= limit + 1e-6  # each term is at most log N, up to rounding
    assert surgery["marginal_kl_nats"] == pytest.approx(surgery["average_kl_nats"] - information, rel=1e-12)


def test_surgery_estimates_the_mutual_information_of_two_overlapping_posteriors():
    """Two examples with posteriors N(−1, 1) and N(1, 1): I = log 2 − E[log(1 + e^{−2 z s})] over z ~ N(s, 1),
    s = ±1, which numerical integration gives; the estimate lies within four standard errors of it."""
    model = vae(latent_dim=1, dims=1)
    fixed_posterior(model, loc=0.0, log_scale=0.0, weight=1.0)
    x = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    z = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    density = torch.exp(-0.5 * (z - 1) ** 2) / math.sqrt(2 * math.pi)
    exact = math.log(2) - torch.trapezoid(density * torch.nn.functional.softplus(-2 * z), z).item()
    torch.manual_seed(0)
    surgery = diagnostics.elbo_surgery(model, x, samples=20000)
    assert 0.05 < exact < math.log(2) - 0.05  # neither extreme
    assert surgery["mutual_information_nats"] == pytest.approx(exact, abs=4 * surgery["mutual_information_stderr"])
    assert surgery["mutual_information_stderr"] < 0.01


def test_surgery_needs_the_density_of_a_diagonal_posterior():
    model = vae(posterior="planar", posterior_layers=1)
    assert diagnostics.elbo_surgery(model, data(50)) is None
    report = model.latent_diagnostics(data(50))
    assert report["elbo_surgery"] is None and "elbo_surgery" in report["unavailable"]


def test_aggregate_density_is_the_mixture_of_the_posteriors():
    model, x = vae(latent_dim=2), data(7)
    encoding = model.encode(x)
    z = torch.randn(5, 2, dtype=torch.float64)
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(7, dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(encoding.loc, encoding.log_scale.exp()), 1))
    assert diagnostics.aggregate_log_density(z, encoding).tolist() == pytest.approx(mixture.log_prob(z).tolist())


# -- posterior collapse and the report --------------------------------------------------------------------------------
def test_posterior_collapse_lists_the_dimensions_below_the_threshold():
    assert diagnostics.posterior_collapse(torch.tensor([0.001, 0.5, 0.0])) == \
        {"collapsed_dimensions": [0, 2], "collapsed": False}
    assert diagnostics.posterior_collapse(torch.tensor([0.001, 0.5]), threshold=1.0)["collapsed"]


def test_a_posterior_equal_to_the_prior_is_reported_collapsed():
    model, x = vae(latent_dim=3), data()
    fixed_posterior(model, loc=0.0, log_scale=0.0)  # q(z | x) = N(0, I) = p(z) for every x
    report = model.latent_diagnostics(x)
    assert report["collapsed"] and report["collapsed_dimensions"] == [0, 1, 2]
    assert report["active_units"] == 0 and report["kl_nats"] == 0.0 and report["kl_per_dimension"] == [0.0] * 3
    assert abs(report["elbo_surgery"]["mutual_information_nats"]) < 1e-9
    assert abs(report["elbo_surgery"]["marginal_kl_nats"]) < 1e-9


def test_the_report_is_json_reproducible_and_leaves_the_generator_alone():
    model, x = vae(latent_dim=2), data()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    report = model.latent_diagnostics(x)
    assert torch.equal(torch.get_rng_state(), state)
    assert json.loads(json.dumps(report)) == report == model.latent_diagnostics(x)
    assert report["examples"] == 200 and report["latent_dim"] == 2 and not report["collapsed"]
    surgery = report["elbo_surgery"]
    assert surgery["mutual_information_nats"] + surgery["marginal_kl_nats"] == pytest.approx(report["kl_nats"])
    assert 0 < surgery["mutual_information_nats"] <= surgery["mutual_information_limit_nats"]
    assert model.offers("latent_diagnostics") and model.offers("decode") and model.offers("latent_codes")
    with pytest.raises(ValueError, match="shape"):
        model.latent_diagnostics(torch.zeros(3, 5))


# -- pictures and printing --------------------------------------------------------------------------------------------
def written_names(paths) -> set[str]:
    assert all(path.read_bytes()[:8] == PNG for path in paths)
    return {path.name for path in paths}


def test_pictures_of_a_vae_on_2d_points(tmp_path):
    points = load("8gaussians", n_train=256, n_test=256)
    torch.manual_seed(0)
    model = dgm.create("vae", data=points, latent_dim=2, hidden=[8])
    names = written_names(write_pictures(model, points, tmp_path / "two"))
    assert {"samples.png", "latent.png", "reconstructions.png", "decoder_noise.png"} <= names
    model = dgm.create("vae", data=points, latent_dim=3, hidden=[8])
    names = written_names(write_pictures(model, points, tmp_path / "three"))
    assert "latent.png" not in names and "decoder_noise.png" in names  # a 3D latent space has no scatter


def test_pictures_of_a_vae_on_tiny_images(tmp_path):
    digits = load("digits")
    torch.manual_seed(0)
    model = dgm.create("vae", data=digits, latent_dim=2, hidden=[16])
    names = written_names(write_pictures(model, digits, tmp_path / "vae"))
    assert {"samples.png", "latent.png", "reconstructions.png", "interpolations.png"} <= names
    assert "decoder_noise.png" not in names  # drawn for 2D points only
    pixel = dgm.create("vae", data=digits, latent_dim=4, hidden=[16], decoder="pixelcnn", pixelcnn_filters=4,
                       pixelcnn_layers=1, pixelcnn_kernel=3)
    names = written_names(write_pictures(pixel, digits, tmp_path / "pixelvae"))
    assert "reconstructions.png" in names and "interpolations.png" not in names  # no decoder mean to interpolate


def test_train_and_evaluate_print_the_diagnostics(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", "--model", "vae", "--data", "gaussians-2d", "--data-arg", "n_train=512", "--data-arg",
                 "n_test=256", "--model-arg", "latent_dim=2", "--model-arg", "hidden=[16]", "--max-steps", "5",
                 "--batch-size", "128", "--out", str(run), "--no-progress", "--no-pictures"]) == 0
    out = capsys.readouterr().out
    assert "latent diagnostics on the test data:" in out and "\n  active_units: " in out
    assert "\n  elbo_surgery.mutual_information_nats: " in out
    saved = json.loads((run / "metrics.json").read_text())["latent"]
    assert saved["examples"] == 256 and len(saved["kl_per_dimension"]) == 2
    assert main(["evaluate", str(run), "--metrics", "nll"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["latent"] == saved
    assert '"kl_per_dimension": [' in out and '"active_units": ' in out
