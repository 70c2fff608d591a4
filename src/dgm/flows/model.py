"""A normalizing flow as a generative model: a standard normal base pushed through a bijection (lectures 5-6).

Density by the change of variables formula, ``log p(x) = log N(f(x); 0, I) + log|det ∂f(x)/∂x|``, and samples by the
inverse, ``x = f⁻¹(z)`` with ``z ~ N(0, I)``, whose density comes in the same pass:
``log q(x) = log N(z; 0, I) − log|det ∂x/∂z|``.

Two objectives (lecture 6; Rezende & Mohamed, 2015, §6.1), chosen by the ``objective`` option:

- ``"forward_kl"``: maximum likelihood on data batches, ``KL(p ‖ q) = E_p[−log q(x)] − H(p)``; needs the
  normalizing direction ``f`` (cheap for couplings and MAF).
- ``"reverse_kl"``: fit ``q`` to an unnormalised target ``exp(−U)/Z`` (``target``, an energy of
  :mod:`dgm.data.energies`) by minimising ``E_q[log q(x) + U(x)] = KL(q ‖ p) − log Z`` over samples ``x = f⁻¹(z)``;
  needs only the generative direction (cheap for planar, radial, Sylvester and IAF flows). The data batches serve
  only for their size; ``kl`` adds ``log Z`` and is logged as the KL divergence itself. Reverse KL is mode-seeking:
  started narrow, ``q`` may settle on one mode of a multimodal target. ``anneal_steps > 0`` tempers the energy for
  that many training steps, minimising ``E_q[log q + β_t U]`` with ``β_t = min(1, 0.01 + t/anneal_steps)`` (the
  schedule of Rezende & Mohamed), so that ``q`` first spreads over the whole target and then sharpens; ``kl`` is
  always that of the untempered target.

A bijection is written once, in whichever direction is natural to it, and used both ways: every bijection
implements ``forward`` (``x → z``) and ``inverse`` (``z → x``), one of them in closed form and the other possibly
numerically (:mod:`dgm.flows.planar`); this class calls ``forward`` for densities and ``inverse`` for samples.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.core import GenerativeModel, check_integer, check_sample_count
from dgm.data.energies import target as energy_target
from dgm.flows.bijection import Compose

OBJECTIVES = ("forward_kl", "reverse_kl")
DIRECTIONS = ("normalizing", "generative")


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over every non-batch dimension, shape ``(N,)``."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(dim=1)


class FlowModel(GenerativeModel):
    """Base class of flows on continuous data of shape ``config["shape"]``.

    A subclass builds its ``bijection`` (data ``x`` → latent ``z``, see :mod:`dgm.flows.bijection`), a
    :class:`Compose` so that :meth:`trajectory` can list its layers, from JSON-able constructor arguments and passes
    it to ``super().__init__`` with ``objective``, ``target`` and ``anneal_steps`` (see the module docstring); the
    recorded ``config`` must contain ``shape``.
    """

    likelihood = "exact"

    def __init__(self, bijection: Compose, objective: str = "forward_kl", target: str | None = None,
                 anneal_steps: int = 0):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.bijection = bijection
        self.objective = objective
        self.target = None
        if objective == "reverse_kl":
            if target is None:
                raise ValueError("objective='reverse_kl' needs target=, an energy name such as 'U1'")
            self.target = energy_target(target)
            if tuple(self.config["shape"]) != (2,):
                raise ValueError(f"the energies are 2D targets: reverse_kl needs shape (2,), "
                                 f"got {self.config['shape']}")
        elif target is not None or anneal_steps:
            raise ValueError(f"target={target!r} and anneal_steps={anneal_steps!r} are options of "
                             "objective='reverse_kl'")
        self.anneal_steps = check_integer(anneal_steps, "anneal_steps", 0)
        if self.anneal_steps:
            self.register_buffer("steps_trained", torch.zeros((), dtype=torch.long))  # the annealing clock

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_abs_det = self.bijection(self.check(x))
        return standard_normal_log_prob(z) + log_abs_det

    def sample_with_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` samples ``x = f⁻¹(z)`` and their ``log q(x) = log N(z) − log|det ∂x/∂z|``, with gradients."""
        check_sample_count(n)
        z = torch.randn(n, *self.config["shape"], device=self.device, dtype=self.dtype)
        x, log_abs_det = self.bijection.inverse(z)
        return x, standard_normal_log_prob(z) - log_abs_det

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.sample_with_log_prob(n)[0]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Forward KL: the mean NLL of the batch. Reverse KL: ``E_q[log q + β U]`` over as many samples as the batch
        holds examples (``β = 1`` unless annealing), and the KL estimate ``kl`` of the untempered target."""
        if self.objective == "forward_kl":
            return super().loss(x)
        log_q, energy = self._log_q_and_energy(len(x))
        kl = (log_q + energy).mean() + self.target.log_normalizer
        if not (self.anneal_steps and self.training and torch.is_grad_enabled()):
            return {"loss": kl - self.target.log_normalizer, "kl": kl}
        beta = min(1.0, 0.01 + self.steps_trained.item() / self.anneal_steps)
        self.steps_trained += 1
        return {"loss": (log_q + beta * energy).mean(), "kl": kl, "beta": torch.tensor(beta)}

    def reverse_kl_terms(self, n: int) -> Tensor:
        """``log q(x) + U(x) + log Z`` for ``n`` samples ``x ~ q``: their mean estimates ``KL(q ‖ p)`` for the
        target ``p = exp(−U)/Z`` (``objective="reverse_kl"`` only), with gradients."""
        log_q, energy = self._log_q_and_energy(n)
        return log_q + energy + self.target.log_normalizer

    def _log_q_and_energy(self, n: int) -> tuple[Tensor, Tensor]:
        """``log q(x)`` and the target's ``U(x)`` for ``n`` samples ``x ~ q``."""
        if self.target is None:
            raise ValueError("the reverse KL needs a target: build the model with objective='reverse_kl'")
        samples, log_q = self.sample_with_log_prob(n)
        return log_q, self.target.energy(samples)

    def transform(self, x: Tensor) -> Tensor:
        """The latent ``z = f(x)`` of each example; standard normal if the flow fits the data."""
        return self.bijection(self.check(x))[0]

    def trajectory(self, points: Tensor, direction: str = "normalizing") -> list[Tensor]:
        """The points after each layer: ``[x, f_1(x), …, f(x)]`` for data ``x`` (``"normalizing"``), or
        ``[z, …, f⁻¹(z)]`` for latents ``z`` through the inverse layers in reverse order (``"generative"``)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        points = self.check(points)
        if direction == "normalizing":
            return self.bijection.trajectory(points)
        path = [points]
        for bijection in reversed(self.bijection.bijections):
            path.append(bijection.inverse(path[-1])[0])
        return path
