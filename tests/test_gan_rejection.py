"""Discriminator rejection sampling: the binned critic ratio recovers a known log density ratio, the rejection sampler
draws the target exactly when the ratio is right, a GAN whose critic outputs the true log-ratio of the data to its
generator samples the data after calibration, and training calibrates it."""
import inspect
import json
import math

import pytest
import torch
from torch import nn

import dgm
from dgm.models.adversarial.rejection import fit_log_ratio, log_ratio_of, rejection_sample


def test_binned_ratio_recovers_the_log_ratio_of_two_gaussians():
    """Critic outputs ``N(1, 1)`` on real and ``N(0, 1)`` on fake examples (``log r(d) = d − ½``): each bin's ratio
    is ``P_real(bin) / P_fake(bin)`` of the two normals, within 4 standard errors of its counts."""
    torch.manual_seed(0)
    n = 400_000
    on_real, on_fake = 1 + torch.randn(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    edges, log_ratio = fit_log_ratio(on_real, on_fake)
    assert edges.shape == (49,) and log_ratio.shape == (50,)
    normal = torch.distributions.Normal(0.0, 1.0)
    bounds = torch.cat([torch.tensor([-math.inf]), edges, torch.tensor([math.inf])]).double()
    real_share, fake_share = (normal.cdf(bounds - shift).diff() for shift in (1.0, 0.0))
    standard_error = (1 / (n * real_share) + 1 / (n * fake_share)).sqrt()
    assert ((log_ratio - (real_share / fake_share).log()).abs() < 4 * standard_error).all()
    centres = (edges[1:] + edges[:-1]) / 2
    torch.testing.assert_close(log_ratio_of(centres, edges, log_ratio), log_ratio[1:-1])
    edges, log_ratio = fit_log_ratio(torch.randn(1000), 10 + torch.randn(1000))  # disjoint: no real in most bins
    assert torch.isfinite(log_ratio[0]) and torch.isneginf(log_ratio[1:]).all()  # every real below the first edge
    with pytest.raises(ValueError, match="at least 500"):
        fit_log_ratio(torch.zeros(499), torch.zeros(499))


def test_rejection_with_the_true_ratio_draws_the_target():
    """Candidates ``N(0, 2²)``, target ``N(0, 1)``: ``r = 2 exp(−3x²/8) ≤ 2``; half the candidates are kept."""
    torch.manual_seed(1)
    proposed = []

    def propose(k):
        proposed.append(k)
        return 2 * torch.randn(k, dtype=torch.float64)

    x = rejection_sample(propose, lambda y: math.log(2) - 3 * y ** 2 / 8, 100_000, math.log(2))
    assert len(x) == 100_000
    assert x.mean().item() == pytest.approx(0, abs=4 / 100_000 ** 0.5)
    assert x.var().item() == pytest.approx(1, abs=4 * 2 ** 0.5 / 100_000 ** 0.5)
    assert (x.abs() > 1.96).double().mean().item() == pytest.approx(0.05, abs=0.003)  # the tails, not only moments
    assert len(proposed) in (2, 3)  # 100 000 asked per round, about half kept
    with pytest.raises(RuntimeError, match="rejects nearly every sample"):
        rejection_sample(lambda k: torch.zeros(k), lambda y: y - 1e3, 5, 0.0)


class WideGenerator(nn.Module):
    """``G(z) = 2 z``: the generator's samples follow ``N(0, 4 I)``."""

    def forward(self, z, labels=None):
        return 2 * z


class LogRatioCritic(nn.Module):
    """The true ``log p_data / p_G`` for data ``N(0, I)`` and the generator above, in 2D: ``log 4 − 3|x|²/8``."""

    def forward(self, x, labels=None):
        return math.log(4) - 3 * x.pow(2).sum(1) / 8


def test_a_gan_with_the_true_critic_samples_the_data_after_calibration():
    torch.manual_seed(2)
    model = dgm.create("gan", shape=(2,), latent_dim=2)
    model.generator, model.critic = WideGenerator(), LogRatioCritic()
    with pytest.raises(ValueError, match="calibrate_rejection"):
        model.sample(4, rejection=True)
    found = model.calibrate_rejection(torch.randn(100_000, 2))
    # M: the mean ratio of the 2% of generated points nearest the centre, |x|² < 0.16: 4 e^{−0.03} = 3.88
    assert found["log_bound"] == pytest.approx(math.log(3.88), abs=0.08)
    assert found["acceptance"] == pytest.approx(1 / 3.88, abs=0.025)
    x = model.sample(50_000, rejection=True)
    assert torch.allclose(torch.cov(x.T), torch.eye(2), atol=0.04)
    assert model.sample(50_000).var(0).mean().item() == pytest.approx(4, abs=0.1)  # without: the generator's


class QuadraticCritic(nn.Module):
    """``D(x) = a |x|² + b``, both zero at first: the family that holds the log-ratio of the test above."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))

    def forward(self, x, labels=None):
        return self.a * x.pow(2).sum(1) + self.b


def test_fine_tuning_turns_the_critic_into_the_log_ratio_before_calibration():
    """With ``calibration_steps``, calibration first trains the critic on the logistic loss, whose optimum is the
    log-ratio ``log 4 − 3|x|²/8`` of data ``N(0, I)`` to the generator ``N(0, 4 I)``; rejection then draws the data.
    Fine-tuning needs half of the examples, so 999 leave ``after_training`` uncalibrated (500 are needed for each
    half)."""
    torch.manual_seed(5)
    model = dgm.create("gan", shape=(2,), latent_dim=2, calibration_steps=3000)
    model.generator, model.critic = WideGenerator(), QuadraticCritic()
    assert model.after_training(torch.randn(999, 2)) is None and not model.rejection_calibrated
    found = model.calibrate_rejection(torch.randn(200_000, 2))
    assert model.critic.a.item() == pytest.approx(-3 / 8, abs=0.03)
    assert model.critic.b.item() == pytest.approx(math.log(4), abs=0.06)
    assert found["acceptance"] == pytest.approx(1 / 3.88, abs=0.025)
    # one batch's logistic loss at the optimum: ½ (E_P softplus(−log r) + E_Q softplus(log r)) = 0.520 (Monte Carlo)
    assert found["fine_tuning_loss"] == pytest.approx(0.520, abs=0.06)
    assert not model.critic.training
    with pytest.raises(ValueError, match="steps"):
        model.fine_tune_critic(torch.randn(10, 2), 0)
    x = model.sample(50_000, rejection=True)
    assert torch.allclose(torch.cov(x.T), torch.eye(2), atol=0.04)
    with pytest.raises(ValueError, match="calibration_steps"):
        dgm.create("gan", shape=(2,), calibration_steps=-1)


def test_the_calibration_is_saved_with_the_model(tmp_path):
    torch.manual_seed(3)
    model = dgm.create("gan", shape=(2,), latent_dim=2, hidden=[8])
    model.calibrate_rejection(torch.randn(500, 2))
    loaded = dgm.load(model.save(tmp_path / "gan"))
    assert torch.equal(loaded.rejection_log_ratio, model.rejection_log_ratio) and loaded.rejection_calibrated
    assert torch.equal(loaded.rejection_edges, model.rejection_edges)
    torch.manual_seed(4)
    expected = model.sample(20, rejection=True)
    torch.manual_seed(4)
    assert torch.equal(loaded.sample(20, rejection=True), expected)
    conditional = dgm.create("gan", shape=(2,), n_classes=3)
    with pytest.raises(ValueError, match="unconditional"):
        conditional.calibrate_rejection(torch.randn(10, 2))


def test_training_calibrates_rejection_sampling_and_the_cli_samples_with_it(tmp_path):
    """``fit`` calls ``after_training`` with training examples: a trained GAN samples with rejection at once,
    also through ``dgm sample --sample-arg rejection=true``; a data set under 500 examples leaves it uncalibrated."""
    from dgm.cli import main
    from dgm.data import load
    from dgm.training import fit, seed_everything
    data = load("8gaussians", n_train=1000, n_test=500)
    seed_everything(0)
    model = dgm.create("gan", data=data, hidden=[16], latent_dim=2)
    run = fit(model, data, tmp_path / "run", max_steps=20, batch_size=100, progress=False)
    assert run.model.rejection_calibrated and dgm.load(run.directory).rejection_calibrated
    recorded = json.loads((run.directory / "run.json").read_text())["after_training"]["rejection"]
    assert 0 < recorded["acceptance"] <= 1 and recorded["log_bound"] == run.model.rejection_log_ratio.max().item()
    assert run.model.sample(300, rejection=True).shape == (300, 2)
    main(["sample", str(run.directory), "-n", "50", "--sample-arg", "rejection=true", "-o", str(tmp_path / "x.npz")])
    assert (tmp_path / "x.npz").exists()
    assert main(["evaluate", str(run.directory), "--metrics", "modes", "-n", "500", "--sample-arg",
                 "rejection=true"]) == 0
    metrics = json.loads((run.directory / "metrics.json").read_text())
    assert metrics["sample_options"] == {"rejection": True} and "modes_covered" in metrics["sample_quality"]
    assert main(["evaluate", str(run.directory), "--metrics", "modes", "--sample-arg", "steps=3"]) != 0
    small = load("8gaussians", n_train=400, n_test=100)
    seed_everything(0)
    model = dgm.create("gan", data=small, hidden=[16], latent_dim=2)
    run = fit(model, small, tmp_path / "small", max_steps=2, batch_size=100, progress=False)
    assert not run.model.rejection_calibrated
    assert "after_training" not in json.loads((run.directory / "run.json").read_text())


def test_training_saves_the_fine_tuned_critic(tmp_path):
    """With ``calibration_steps`` the critic that ``fit`` saves is the fine-tuned one, which the saved calibration
    was binned on: it differs from the trained critic, and the loaded model reproduces the run's rejection samples."""
    from dgm.data import load
    from dgm.training import fit, seed_everything
    data = load("8gaussians", n_train=1000, n_test=500)
    trained = {}
    for steps in (0, 50):
        seed_everything(0)
        model = dgm.create("gan", data=data, hidden=[16], latent_dim=2, calibration_steps=steps)
        run = fit(model, data, tmp_path / f"run{steps}", max_steps=20, batch_size=100, progress=False)
        trained[steps] = run.model.critic.state_dict()
    assert not all(torch.equal(trained[0][key], trained[50][key]) for key in trained[0])
    loaded = dgm.load(run.directory)
    assert all(torch.equal(loaded.critic.state_dict()[key], value) for key, value in trained[50].items())
    torch.manual_seed(6)
    expected = run.model.sample(100, rejection=True)
    torch.manual_seed(6)
    assert torch.equal(loaded.sample(100, rejection=True), expected)


@pytest.mark.parametrize("name, options", [
    ("dcgan", {"shape": (1, 28, 28), "width": 4, "latent_dim": 4}),
    ("sngan", {"shape": (1, 8, 8), "width": 4, "latent_dim": 4}),
    ("sagan", {"shape": (1, 8, 8), "width": 4, "latent_dim": 4, "attention_resolution": 8}),
    ("stylegan", {"shape": (1, 8, 8), "width": 4, "latent_dim": 4, "w_dim": 4, "mapping_layers": 1}),
    ("pggan", {"shape": (1, 8, 8), "width": 4, "latent_dim": 4}),
])
def test_every_image_gan_samples_with_rejection(name, options):
    """Each GAN's own ``sample`` (StyleGAN's takes ``psi`` and ``noise`` as well) offers ``rejection`` and draws
    images with it once calibrated (untrained networks: the path, whose mathematics the MLP GAN above tests)."""
    torch.manual_seed(5)
    model = dgm.create(name, levels=256, **options).eval()
    assert "rejection" in inspect.signature(model.sample).parameters
    with pytest.raises(ValueError, match="calibrate_rejection"):
        model.sample(2, rejection=True)
    model.calibrate_rejection(torch.randint(0, 256, (500, *options["shape"])).float())
    x = model.sample(6, rejection=True)
    assert x.shape == (6, *options["shape"]) and ((x >= 0) & (x <= 255) & (x == x.round())).all()
