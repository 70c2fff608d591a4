"""The losses of adversarial training, each a small object with its critic side and its generator side.

Every loss takes the critic's raw outputs ``v`` ``(N,)`` on real data and on generated data and returns scalars to
minimise: ``critic(v_real, v_fake)`` for the critic (discriminator), ``generator(v_fake)`` for the generator.

- :class:`Minimax` and :class:`NonSaturating` (Goodfellow et al., 2014, eq. 1 and §3): ``D = σ(v)``; the critic
  minimises ``softplus(−v_real) + softplus(v_fake)`` (``−log D(x) − log(1 − D(G(z)))``); the generator minimises
  ``log(1 − D(G(z))) = −softplus(v_fake)`` (minimax) or ``−log D(G(z)) = softplus(−v_fake)`` (non-saturating).
- :class:`LeastSquares` (LSGAN; Mao et al., 2017, eq. 2 with ``a = 0, b = c = 1``): critic
  ``½ (v_real − 1)² + ½ v_fake²``, generator ``½ (v_fake − 1)²``.
- :class:`Wasserstein` (WGAN; Arjovsky, Chintala & Bottou, 2017, eq. 3): critic ``v_fake − v_real``, generator
  ``−v_fake``; the critic must be kept 1-Lipschitz (weight clipping, :func:`gradient_penalty`, spectral norm).
- :class:`Hinge` (Lim & Ye, 2017; Miyato et al., 2018, eq. 16–17): critic ``relu(1 − v_real) + relu(1 + v_fake)``,
  generator ``−v_fake``.
- :class:`FDivergence` (f-GAN; Nowozin, Cseke & Tomioka, 2016, eq. 6 and Table 6): the critic's output passes an
  activation ``T = g_f(v)`` into the domain of the convex conjugate ``f*``; the critic maximises the variational
  lower bound ``E_P[T] − E_Q[f*(T)] ≤ D_f(P ‖ Q)`` (equality at ``T = f'(p/q)``), the generator minimises it
  (``"f-<divergence>"``: the saddle point of eq. 6) or, as the paper's experiments do (§3.2), maximises
  ``E_Q[g_f(v)]`` instead (``"f-<divergence>-non_saturating"``), whose gradient does not vanish where the critic
  rejects the generated points: for Jensen-Shannon that is the non-saturating GAN, for total variation (``f*(t) =
  t``) the same as the saddle.

Penalties on the critic: :func:`gradient_penalty` (WGAN-GP; Gulrajani et al., 2017, eq. 3: ``E (‖∇_x̂ D(x̂)‖ − 1)²``
at random interpolates ``x̂`` of real and generated points) and :func:`r1_penalty` (Mescheder, Geiger & Nowozin,
2018, eq. 9: ``½ E_P ‖∇_x D(x)‖²`` on real data). Each is multiplied by its weight by the model.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


class Minimax:
    """``label_smoothing = α`` gives real data the target ``1 − α`` instead of 1 (one-sided label smoothing;
    Salimans et al., 2016, §3.4): the critic's real term is ``−(1 − α) log D(x) − α log(1 − D(x))``."""

    def __init__(self, label_smoothing: float = 0.0):
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        alpha = self.label_smoothing
        real_term = F.softplus(-real) if alpha == 0 else (1 - alpha) * F.softplus(-real) + alpha * F.softplus(real)
        return real_term.mean() + F.softplus(fake).mean()

    def generator(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()


class NonSaturating(Minimax):
    def generator(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()


class LeastSquares:
    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()

    def generator(self, fake: Tensor) -> Tensor:
        return 0.5 * ((fake - 1) ** 2).mean()


class Wasserstein:
    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def generator(self, fake: Tensor) -> Tensor:
        return -fake.mean()


class Hinge(Wasserstein):
    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


@dataclass(frozen=True)
class Divergence:
    """An f-divergence of Nowozin et al.'s Table 6: the output activation ``g_f``, the conjugate ``f*``, and their
    composition ``f*(g_f(v))`` in a closed form that stays finite where the two computed in turn would not (the
    reverse KL's ``−1 − log(exp(−v))`` once ``exp(−v)`` underflows, Jensen-Shannon's ``−log(2 − e^t)`` as ``e^t``
    nears 2)."""

    activation: Callable[[Tensor], Tensor]
    conjugate: Callable[[Tensor], Tensor]
    conjugate_of_activation: Callable[[Tensor], Tensor]


F_DIVERGENCES = {
    "kl": Divergence(lambda v: v, lambda t: torch.exp(t - 1), lambda v: torch.exp(v - 1)),
    "reverse_kl": Divergence(lambda v: -torch.exp(-v), lambda t: -1 - torch.log(-t), lambda v: v - 1),
    "pearson": Divergence(lambda v: v, lambda t: t ** 2 / 4 + t, lambda v: v ** 2 / 4 + v),
    "squared_hellinger": Divergence(lambda v: 1 - torch.exp(-v), lambda t: t / (1 - t), torch.expm1),
    "jensen_shannon": Divergence(lambda v: math.log(2) - F.softplus(-v), lambda t: -torch.log(2 - torch.exp(t)),
                                 lambda v: F.softplus(v) - math.log(2)),
    "total_variation": Divergence(lambda v: 0.5 * torch.tanh(v), lambda t: t, lambda v: 0.5 * torch.tanh(v)),
}


class FDivergence:
    """The f-GAN loss of the divergence ``name`` (a key of ``F_DIVERGENCES``), its generator update the saddle
    point's or, with ``non_saturating``, the paper's practical one; ``bound(real, fake)`` is the variational lower
    bound ``E_P[T] − E_Q[f*(T)]`` on ``D_f(P ‖ Q)``."""

    def __init__(self, name: str, non_saturating: bool = False):
        if name not in F_DIVERGENCES:
            raise ValueError(f"unknown f-divergence {name!r}; choose one of {sorted(F_DIVERGENCES)}")
        self.divergence = F_DIVERGENCES[name]
        self.non_saturating = non_saturating

    def bound(self, real: Tensor, fake: Tensor) -> Tensor:
        return self.divergence.activation(real).mean() - self.divergence.conjugate_of_activation(fake).mean()

    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return -self.bound(real, fake)

    def generator(self, fake: Tensor) -> Tensor:
        if self.non_saturating:
            return -self.divergence.activation(fake).mean()
        return -self.divergence.conjugate_of_activation(fake).mean()


def _input_gradients(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``∇_x Σ critic(x)`` per example, flattened ``(N, D)``, kept in the graph for the critic's update."""
    x = x.detach().requires_grad_(True)
    outputs = critic(x)
    gradients, = torch.autograd.grad(outputs, x, grad_outputs=torch.ones_like(outputs), create_graph=True)
    return gradients.flatten(1)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """``E (‖∇ critic(x̂)‖₂ − 1)²`` at ``x̂ = t·real + (1 − t)·fake``, ``t ~ U[0, 1]`` per example (WGAN-GP)."""
    t = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    interpolates = t * real.detach() + (1 - t) * fake.detach()
    return ((_input_gradients(critic, interpolates).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """``½ E_P ‖∇_x critic(x)‖²`` on real data (R1)."""
    return 0.5 * _input_gradients(critic, real).square().sum(dim=1).mean()


LOSSES = {"minimax": Minimax, "non_saturating": NonSaturating, "least_squares": LeastSquares,
          "wasserstein": Wasserstein, "hinge": Hinge}
NON_SATURATING_SUFFIX = "-non_saturating"
LOSS_NAMES = (*LOSSES, *(f"f-{name}{suffix}" for name in F_DIVERGENCES for suffix in ("", NON_SATURATING_SUFFIX)))


def adversarial_loss(name: str, label_smoothing: float = 0.0):
    """The loss named ``name``: a key of ``LOSSES``, or ``"f-<divergence>"`` for the f-GAN of a key of
    ``F_DIVERGENCES`` (``"f-kl"``, ``"f-jensen_shannon"``, ...), ``"f-<divergence>-non_saturating"`` for its
    generator's practical update. ``label_smoothing`` is an option of the losses of
    a discriminator with probabilities (minimax, non-saturating)."""
    if label_smoothing and name not in ("minimax", "non_saturating"):
        raise ValueError(f"label_smoothing smooths the targets of a discriminator's probabilities: use it with "
                         f"loss 'minimax' or 'non_saturating', not {name!r}")
    if name in ("minimax", "non_saturating"):
        return LOSSES[name](label_smoothing)
    if name in LOSSES:
        return LOSSES[name]()
    if isinstance(name, str) and name.startswith("f-"):
        divergence = name[2:].removesuffix(NON_SATURATING_SUFFIX)
        if divergence in F_DIVERGENCES:
            return FDivergence(divergence, non_saturating=name.endswith(NON_SATURATING_SUFFIX))
    raise ValueError(f"unknown adversarial loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
