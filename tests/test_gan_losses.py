"""Adversarial losses: the course's gradient-penalty tests, R1 in closed form, each f-divergence's variational bound
equal to the divergence at the optimal critic on a three-point space, and the classic losses against formulas."""
import math

import pytest
import torch

from dgm.models.adversarial.losses import (F_DIVERGENCES, FDivergence, Hinge, LeastSquares, Minimax, NonSaturating,
                                           Wasserstein, adversarial_loss, gradient_penalty, r1_penalty)


def test_gradient_penalty_of_the_course():
    """Homework 5: gp(x -> x) = 1 (gradient of norm 2 on 4 entries) and gp(x -> 0x) = 1, on 10x4 inputs."""
    x = torch.randn(10, 4)
    assert gradient_penalty(lambda y: y, x, x).item() == pytest.approx(1.0)
    assert gradient_penalty(lambda y: 0 * y, x, x).item() == pytest.approx(1.0)


def test_gradient_penalty_is_differentiable_in_the_critic_and_r1_is_its_closed_form():
    weight = torch.tensor([3.0, 4.0], requires_grad=True)  # a linear critic of gradient norm 5 everywhere
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    penalty = gradient_penalty(lambda y: y @ weight, real, fake)
    assert penalty.item() == pytest.approx(16.0)
    gradient, = torch.autograd.grad(penalty, weight)
    torch.testing.assert_close(gradient, 2 * (5 - 1) * weight.detach() / 5)  # d/dw (|w| - 1)^2
    assert r1_penalty(lambda y: y @ weight, real).item() == pytest.approx(12.5)  # ½ |w|^2


P = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
Q = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
RATIO = P / Q
# each divergence: D_f(P || Q), the optimal T* = f'(p/q) and the critic output v with g_f(v) = T*
DIVERGENCES = {
    "kl": ((P * (P / Q).log()).sum(), 1 + RATIO.log(), lambda t: t),
    "reverse_kl": ((Q * (Q / P).log()).sum(), -1 / RATIO, lambda t: -torch.log(-t)),
    "pearson": (((P - Q) ** 2 / Q).sum(), 2 * (RATIO - 1), lambda t: t),
    "squared_hellinger": (((P.sqrt() - Q.sqrt()) ** 2).sum(), 1 - RATIO.rsqrt(), lambda t: -torch.log(1 - t)),
    "jensen_shannon": ((P * (2 * P / (P + Q)).log() + Q * (2 * Q / (P + Q)).log()).sum(),
                       (2 * RATIO / (1 + RATIO)).log(), lambda t: -torch.log(2 * torch.exp(-t) - 1)),
}


def _draws(distribution: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` of the three points, each repeated as often as its probability in quarters (an exact mean)."""
    return values.repeat_interleave((4 * distribution).round().long())


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_f_gan_bound_equals_the_divergence_at_the_optimal_critic(name):
    divergence, optimum, critic_output = DIVERGENCES[name]
    v = critic_output(optimum)
    torch.testing.assert_close(F_DIVERGENCES[name].activation(v), optimum)
    loss = FDivergence(name)
    bound = loss.bound(_draws(P, v), _draws(Q, v))
    torch.testing.assert_close(bound, divergence)
    torch.testing.assert_close(loss.critic(_draws(P, v), _draws(Q, v)), -divergence)
    # any other critic gives less: the bound is a lower bound
    for shift in (-0.3, 0.2):
        assert loss.bound(_draws(P, v + shift), _draws(Q, v + shift)) < divergence


def test_total_variation_bound_at_its_optimum_and_below_it():
    """T* = ½ sign(p − q) lies on the edge of tanh's range, so the bound is checked through the conjugate."""
    divergence = 0.5 * (P - Q).abs().sum()
    tv = F_DIVERGENCES["total_variation"]
    optimum = 0.5 * torch.sign(P - Q)
    torch.testing.assert_close((P * optimum).sum() - (Q * tv.conjugate(optimum)).sum(), divergence)
    v = torch.tensor([3.0, 0.0, -3.0], dtype=torch.float64)
    assert FDivergence("total_variation").bound(_draws(P, v), _draws(Q, v)) < divergence


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_activations_land_in_the_conjugates_domain(name):
    divergence = F_DIVERGENCES[name]
    v = torch.linspace(-20, 20, 401, dtype=torch.float64)
    assert torch.isfinite(divergence.conjugate(divergence.activation(v))).all()


def test_classic_losses_against_their_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    softplus = torch.nn.functional.softplus
    discriminator = (softplus(-real).mean() + softplus(fake).mean()).item()
    assert Minimax().critic(real, fake).item() == pytest.approx(discriminator)
    assert NonSaturating().critic(real, fake).item() == pytest.approx(discriminator)
    d_fake = torch.sigmoid(fake)
    assert Minimax().generator(fake).item() == pytest.approx(torch.log(1 - d_fake).mean().item(), rel=1e-6)
    assert NonSaturating().generator(fake).item() == pytest.approx(-torch.log(d_fake).mean().item(), rel=1e-6)
    assert LeastSquares().critic(real, fake).item() == pytest.approx(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2)
    assert LeastSquares().generator(fake).item() == pytest.approx(0.5 * (0.25 + 16) / 2)
    assert Wasserstein().critic(real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert Hinge().critic(real, fake).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert Hinge().generator(fake).item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="unknown f-divergence"):
        FDivergence("kullback")
    assert math.isclose(Wasserstein().generator(fake).item(), 1.25)


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_closed_form_conjugate_of_the_activation_and_its_range(name):
    """``f*(g_f(v))`` in closed form equals the two in turn where those are finite (float64, |v| ≤ 20), and stays
    finite in float32 where the composition overflows or takes the log of 0 (|v| up to 80)."""
    divergence = F_DIVERGENCES[name]
    v = torch.linspace(-20, 20, 401, dtype=torch.float64)
    torch.testing.assert_close(divergence.conjugate_of_activation(v), divergence.conjugate(divergence.activation(v)))
    wide = torch.linspace(-80, 80, 161)
    assert torch.isfinite(divergence.conjugate_of_activation(wide)).all()


def test_non_saturating_f_gan_generators():
    """``"f-<divergence>-non_saturating"`` maximises ``E_Q[g_f(v)]``: for Jensen-Shannon, ``g_f(v) = log 2 −
    softplus(−v)``, the non-saturating GAN's generator loss shifted by ``log 2``; for total variation, whose
    ``f*(t) = t``, the saddle's own; for squared Hellinger its gradient ``e^{−v}`` grows where the critic rejects
    (``v → −∞``) while the saddle's ``e^v`` vanishes. The critic's side is the saddle's."""
    fake, real = torch.tensor([4.0, 0.5, -6.0], dtype=torch.float64), torch.tensor([1.0, -2.0], dtype=torch.float64)
    js = adversarial_loss("f-jensen_shannon-non_saturating")
    assert js.generator(fake).item() == pytest.approx(NonSaturating().generator(fake).item() - math.log(2))
    tv = ("f-total_variation", "f-total_variation-non_saturating")
    assert adversarial_loss(tv[0]).generator(fake).item() == pytest.approx(adversarial_loss(tv[1]).generator(fake))
    gradients = {}
    for name in ("f-squared_hellinger", "f-squared_hellinger-non_saturating"):
        v = fake.clone().requires_grad_(True)
        adversarial_loss(name).generator(v).backward()
        gradients[name] = -v.grad * len(v)  # the ascent direction on each output
        assert adversarial_loss(name).critic(real, fake).item() == pytest.approx(
            FDivergence("squared_hellinger").critic(real, fake).item())
    torch.testing.assert_close(gradients["f-squared_hellinger"], fake.exp())
    torch.testing.assert_close(gradients["f-squared_hellinger-non_saturating"], (-fake).exp())
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        adversarial_loss("f-kullback-non_saturating")
