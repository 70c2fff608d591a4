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

import torch
from torch import Tensor

from dgm.core import GenerativeModel, check_integer, check_sample_count, vector_dim
from dgm.distributions import StandardNormal
from dgm.distributions.priors import BaseDistribution
from dgm.flows.bijection import Compose

DIRECTIONS = ("normalizing", "generative")


def sample_base(base: BaseDistribution, n: int, temperature: float = 1.0) -> Tensor:
    """``n`` draws of a flow's ``base``; a ``temperature`` ``T ≠ 1`` draws the reduced-temperature base
    ``N(0, T² I)`` of the standard normal (Kingma & Dhariwal, 2018, §5.3), which trades diversity for typical
    samples."""
    check_sample_count(n)
    if temperature == 1.0:
        return base.sample(n)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not isinstance(base, StandardNormal):
        raise ValueError(f"temperature is defined for the standard normal base, not for {type(base).__name__}")
    return temperature * base.sample(n)


class FlowModel(GenerativeModel):
    """Base class of flows on continuous data of shape ``config["shape"]``.

    A subclass builds its ``bijection`` (data ``x`` → latent ``z``, see :mod:`dgm.flows.bijection`), a
    :class:`Compose` so that :meth:`layer_trajectory` can list its layers, from JSON-able constructor arguments and
    passes it to ``super().__init__``; the recorded ``config`` must contain ``shape``. ``base`` is the distribution
    of ``z`` (:mod:`dgm.distributions`: a learned diagonal normal, a mixture; the standard normal by default).
    """

    likelihood = "exact"

    def __init__(self, bijection: Compose, base: BaseDistribution | None = None):
        super().__init__()
        self.bijection = bijection
        self.base = StandardNormal(self.config["shape"]) if base is None else base
        self.config.setdefault("shape", list(self.base.shape))  # a flow built directly from its parts

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_abs_det = self.bijection(x)
        return self.base.log_prob(z) + log_abs_det

    def sample_with_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` samples ``x = f⁻¹(z)``, ``z`` drawn from the base with gradients (``rsample``), and their
        ``log q(x) = log p(z) − log|det ∂x/∂z|``."""
        z = self.base.rsample(n)
        x, log_abs_det = self.bijection.inverse(z)
        return x, self.base.log_prob(z) - log_abs_det

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``x = f⁻¹(z)``; ``temperature`` as in :func:`sample_base`."""
        return self.bijection.inverse(sample_base(self.base, n, temperature))[0]

    def latent_codes(self, x: Tensor) -> Tensor:
        """The latent ``z = f(x)`` of each example; standard normal if the flow fits the data."""
        return self.bijection(x)[0]

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


class StackedFlowModel(FlowModel):
    """``n_layers`` layers of one bijection class, ``layer(D)``, on vectors of shape ``(D,)``: the planar and radial
    flows of Rezende & Mohamed (2015), whose subclasses set ``layer``."""

    layer: type

    def __init__(self, shape: tuple[int, ...], n_layers: int = 32):
        dim = vector_dim(shape, self.model_name or type(self).__name__)
        super().__init__(Compose(*(self.layer(dim) for _ in range(check_integer(n_layers, "n_layers", 1)))))
