"""The Lipschitz constant of a trained critic on the 2D sets: at most 1 under spectral normalisation (a bound: every
layer's matrix divided by its largest singular value, LeakyReLU 1-Lipschitz), about 1 under the gradient penalty (a
soft constraint: ‖∇D‖ = 1 is asked at interpolates only)."""
import pytest
import torch

import dgm
from dgm.data.base import load
from dgm.training import fit, seed_everything

LIPSCHITZ_OPTIONS = {
    "wgan-gp": dict(loss="wasserstein", gradient_penalty=10, critic_steps=5, betas=[0.0, 0.9]),
    "sngan": dict(loss="hinge", spectral_norm=True, betas=[0.0, 0.9]),
}


def _trained_critic(tmp_path, data_name: str, options: dict):
    data = load(data_name)
    seed_everything(0)
    gan = dgm.create("gan", data=data, hidden=[64, 64, 64], **options)
    run = fit(gan, data, tmp_path / "run", max_steps=600, batch_size=128, lr=1e-3, progress=False)
    return run.model, data


def _points(model, data, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Real test points and generated points, ``n`` of each."""
    return data.test[:n], model.sample(n)


def _gradient_norms(model, points: torch.Tensor) -> torch.Tensor:
    points = points.clone().requires_grad_(True)
    gradient, = torch.autograd.grad(model.critic(points, None).sum(), points)
    return gradient.norm(dim=1)


def _difference_quotients(model, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|D(a) − D(b)| / ‖a − b‖`` for each pair: lower estimates of the Lipschitz constant."""
    with torch.no_grad():
        return (model.critic(a, None) - model.critic(b, None)).abs() / (a - b).norm(dim=1)


@pytest.mark.parametrize("data_name", ["8gaussians-hw5", "25gaussians"])
def test_spectrally_normalised_critic_is_1_lipschitz(tmp_path, data_name):
    model, data = _trained_critic(tmp_path, data_name, LIPSCHITZ_OPTIONS["sngan"])
    model.eval()
    real, fake = _points(model, data)
    far = 10 * torch.randn(2000, 2)  # away from the data too: the bound holds everywhere
    norms = _gradient_norms(model, torch.cat([real, fake, far]))
    assert norms.max() <= 1 + 1e-3, norms.max()
    assert _difference_quotients(model, torch.cat([real, fake]), torch.cat([fake, far])).max() <= 1 + 1e-3


@pytest.mark.parametrize("data_name", ["8gaussians-hw5", "25gaussians"])
def test_gradient_penalty_keeps_the_critic_about_1_lipschitz(tmp_path, data_name):
    model, data = _trained_critic(tmp_path, data_name, LIPSCHITZ_OPTIONS["wgan-gp"])
    real, fake = _points(model, data)
    t = torch.rand(len(real), 1)
    norms = _gradient_norms(model, t * real + (1 - t) * fake)  # where the penalty asks for norm 1
    assert abs(norms.mean() - 1) < 0.25, norms.mean()  # measured 0.95 to 1.15
    quotients = _difference_quotients(model, real, fake[torch.randperm(len(fake))])
    assert quotients.median() <= 1.0 and quotients.max() <= 1.5, (quotients.median(), quotients.max())


def test_a_spectrally_normalised_maxmin_critic_is_1_lipschitz_and_steeper_than_a_leaky_relu_one():
    """Spectral normalisation bounds both critics' slopes by 1; between the same (untrained) layers, MaxMin, which
    preserves gradient norms, keeps several times the slope that leaky ReLUs do (measured 0.043 against 0.009 at
    the median: a random layer's other singular values are far below its largest, which training aligns)."""
    data = load("25gaussians")
    points = 3 * torch.randn(2000, 2)
    medians = {}
    for activation in ("leaky_relu", "maxmin"):
        seed_everything(0)
        model = dgm.create("gan", data=data, hidden=[64, 64, 64], spectral_norm=True, critic_activation=activation)
        for _ in range(20):  # converge the power iterations
            model.critic(points, None)
        norms = _gradient_norms(model.eval(), points)
        assert norms.max() <= 1 + 1e-3, (activation, norms.max())
        medians[activation] = norms.median().item()
    assert medians["maxmin"] > 3 * medians["leaky_relu"], medians
    with pytest.raises(ValueError, match="critic_activation must be one of leaky_relu, maxmin"):
        dgm.create("gan", data=data, critic_activation="relu")


def test_without_a_constraint_the_wasserstein_critic_is_not_lipschitz(tmp_path):
    """The control of the two tests above: the same critic and loss, unconstrained, grows steep."""
    model, data = _trained_critic(tmp_path, "25gaussians", dict(loss="wasserstein", critic_steps=5, betas=[0.0, 0.9]))
    real, fake = _points(model, data)
    assert _difference_quotients(model, real, fake[torch.randperm(len(fake))]).max() > 5


def test_critic_lipschitz_k_makes_a_spectrally_normalised_critic_k_lipschitz_in_data_units():
    """``critic_lipschitz=K`` feeds the critic ``K x``: with the same weights it is the 1-Lipschitz critic at ``K x``,
    and its slopes are bounded by K instead of 1."""
    data = load("25gaussians")
    points = torch.randn(2000, 2)
    critics = {}
    for k in (1.0, 20.0):
        seed_everything(0)
        critics[k] = dgm.create("gan", data=data, hidden=[64, 64], spectral_norm=True, critic_lipschitz=k)
        for _ in range(20):  # converge the power iterations
            critics[k].critic(points, None)
        critics[k].eval()
    with torch.no_grad():
        torch.testing.assert_close(critics[20.0].critic(points, None), critics[1.0].critic(20 * points, None))
    norms = _gradient_norms(critics[20.0], points)
    assert norms.max() <= 20 * (1 + 1e-3), norms.max()
    assert norms.max() > 1.5, norms.max()  # beyond what K = 1 allows
    with pytest.raises(ValueError, match="critic_lipschitz must be positive"):
        dgm.create("gan", data=data, critic_lipschitz=0)
