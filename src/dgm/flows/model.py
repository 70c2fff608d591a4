"""A normalizing flow as a generative model: a standard normal base pushed through a bijection (lectures 5-6).

Density by the change of variables formula, ``log p(x) = log N(f(x); 0, I) + log|det ∂f(x)/∂x|``, and samples by the
inverse, ``x = f⁻¹(z)`` with ``z ~ N(0, I)``, whose density comes in the same pass:
``log q(x) = log N(z; 0, I) − log|det ∂x/∂z|``.

Trained by maximum likelihood on data (the default ``loss``, forward KL ``KL(p ‖ q) = E_p[−log q(x)] − H(p)``, which
needs the normalizing direction ``f``), or, because a flow gives the density of its own samples
(:meth:`FlowModel.sample_with_log_prob`), by the reverse KL against an unnormalised energy, the trainer's
``objective="reverse_kl"`` (:mod:`dgm.objectives`), which needs only the generative direction.

A bijection is written once, in whichever direction is natural to it, and used both ways: every bijection
implements ``forward`` (``x → z``) and ``inverse`` (``z → x``), one of them in closed form and the other possibly
numerically (:mod:`dgm.flows.planar`); this class calls ``forward`` for densities and ``inverse`` for samples.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.core import GenerativeModel, check_sample_count
from dgm.flows.bijection import Compose

DIRECTIONS = ("normalizing", "generative")


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over every non-batch dimension, shape ``(N,)``."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(dim=1)


class FlowModel(GenerativeModel):
    """Base class of flows on continuous data of shape ``config["shape"]``.

    A subclass builds its ``bijection`` (data ``x`` → latent ``z``, see :mod:`dgm.flows.bijection`), a
    :class:`Compose` so that :meth:`layer_trajectory` can list its layers, from JSON-able constructor arguments and
    passes it to ``super().__init__``; the recorded ``config`` must contain ``shape``.
    """

    likelihood = "exact"

    def __init__(self, bijection: Compose):
        super().__init__()
        self.bijection = bijection

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

    def latent_codes(self, x: Tensor) -> Tensor:
        """The latent ``z = f(x)`` of each example; standard normal if the flow fits the data."""
        return self.bijection(self.check(x))[0]

    def layer_trajectory(self, points: Tensor, direction: str = "normalizing") -> list[Tensor]:
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
