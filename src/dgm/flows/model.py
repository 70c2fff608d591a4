"""A normalizing flow as a generative model: a standard normal base pushed through a bijection (lecture 5).

Density by the change of variables formula, ``log p(x) = log N(f(x); 0, I) + log|det ∂f(x)/∂x|``, and samples by the
inverse, ``x = f⁻¹(z)`` with ``z ~ N(0, I)``; training minimises the negative log-likelihood (forward KL).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.core import GenerativeModel, check_sample_count
from dgm.flows.bijection import Compose


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over every non-batch dimension, shape ``(N,)``."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(dim=1)


class FlowModel(GenerativeModel):
    """Base class of flows on continuous data of shape ``config["shape"]``.

    A subclass builds its ``bijection`` (data ``x`` → latent ``z``, see :mod:`dgm.flows.bijection`), a
    :class:`Compose` so that :meth:`trajectory` can list its layers, from JSON-able constructor arguments and passes
    it to ``super().__init__``; the recorded ``config`` must contain ``shape``.
    """

    likelihood = "exact"

    def __init__(self, bijection: Compose):
        super().__init__()
        self.bijection = bijection

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_abs_det = self.bijection(self.check(x))
        return standard_normal_log_prob(z) + log_abs_det


    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        check_sample_count(n)
        z = torch.randn(n, *self.config["shape"], device=self.device, dtype=self.dtype)
        return self.bijection.inverse(z)[0]

    def transform(self, x: Tensor) -> Tensor:
        """The latent ``z = f(x)`` of each example; standard normal if the flow fits the data."""
        return self.bijection(self.check(x))[0]

    def trajectory(self, x: Tensor) -> list[Tensor]:
        """``[x, f_1(x), …, f(x)]``: the points after each layer of the flow, for plots."""
        return self.bijection.trajectory(self.check(x))
