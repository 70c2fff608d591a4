"""Flows on discrete data: the logit transform, uniform and variational dequantization, and their bounds.

A flow has a density ``p`` on continuous ``y``; discrete data ``x ∈ {0, …, L−1}^D`` (``L = levels``) get the
probability of their cell, ``P(x) = ∫_{cell(x)} p(y) dy`` with ``cell(x) = [x, x + 1) / L`` inside ``[0, 1)^D``
(Theis, van den Oord & Bethge, 2016, §3.1). For any density ``q(u | x)`` of noise ``u ∈ [0, 1)^D``, with
``y = (x + u) / L`` (a change of variables of Jacobian ``L^−D``),

    log P(x) = log E_{u∼q(·|x)} [ p(y) / q(u|x) ] − D log L
             ≥ E_{u∼q(·|x)} [ log p(y) − log q(u|x) ] − D log L                    (Jensen).

- **Uniform dequantization**: ``q = U[0, 1)^D``, ``log q = 0``.
- **Variational dequantization** (Ho, Chen, Srinivas, Duan & Abbeel, 2019, "Flow++", §3.1, eq. 12): ``q(u|x)`` is
  itself a flow conditioned on ``x``, ``u = σ(g(ε; x))`` with ``ε ∼ N(0, I)``, trained jointly with ``p`` to tighten the
  bound. Here ``g`` is a stack of couplings of ``ε`` conditioned on the scaled image ``x̃`` as their context, so each
  conditioner sees the noise it keeps and the whole image. Then
  ``log q(u|x) = log N(ε) − log|det ∂g/∂ε| − Σ log σ'(g)``.
- **Importance-weighted bound** (course homework 5, theory task 1; Burda, Grosse & Salakhutdinov, 2016, eq. 8,
  :mod:`dgm.distributions.importance`): with ``K`` draws ``u_k ∼ q(·|x)``,

      L_K(x) = log (1/K) Σ_k p(y_k) / q(u_k|x) − D log L,   L_1 ≤ L_2 ≤ … ≤ log P(x),   L_K → log P(x),

  in expectation; ``DequantizedFlow.log_prob(x, samples=K)`` returns it (``K = 1`` is the bound above).

Every bound is of ``log P(x)`` on the data's own scale, so bits/dim ``= −L / (D ln 2)`` is on the 8-bit scale for
8-bit images, as papers report it. The model's sampler rounds a flow sample ``y`` to ``floor(clip(y · L, 0, L−1))``;
it gives the cells at the edge the flow's mass outside ``[0, 1)^D`` too, so the bounds hold for the sampler's
probabilities as well.

:class:`LogitTransform` is the course's (homework 3): flows of images model ``logit(α + (1 − 2α) y)`` rather than
``y ∈ [0, 1)`` itself (RealNVP, §4.1), so that the bounded interval becomes the whole real line.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import GenerativeModel, check_integer
from dgm.data.transforms import uniform_dequantize
from dgm.distributions.importance import importance_weighted_bound
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.image_coupling import checkerboard_mask, resnet_coupling
from dgm.distributions import StandardNormal
from dgm.distributions.priors import BaseDistribution
from dgm.flows.model import sample_base
from dgm.flows.transforms import Affine


def _sum_per_example(values: Tensor) -> Tensor:
    return values.flatten(1).sum(dim=1)


class LogitTransform(Bijection):
    """``z = logit(α + (1 − 2α) x)`` for ``x ∈ [0, 1]`` (the course's ``LogitTransform``, homework 3).

    With ``y = α + (1 − 2α) x``: ``log|dz/dx| = −log y − log(1 − y) + log(1 − 2α)``; the inverse is
    ``x = (σ(z) − α) / (1 − 2α)`` with ``log|dx/dz| = −z − 2 softplus(−z) − log(1 − 2α)``.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must lie in [0, 0.5), got {alpha}")
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(y) - torch.log1p(-y)
        log_derivative = -torch.log(y) - torch.log1p(-y) + math.log(1 - 2 * self.alpha)
        return z, _sum_per_example(log_derivative)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        log_derivative = -z - 2 * F.softplus(-z) - math.log(1 - 2 * self.alpha)
        return x, _sum_per_example(log_derivative)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class UniformDequantizer(nn.Module):
    """``u ∼ U[0, 1)^D``, ``log q(u|x) = 0`` (Theis et al., 2016)."""

    def forward(self, x: Tensor, levels: int) -> tuple[Tensor, Tensor]:
        """``(y, log q(u|x))`` with ``y = (x + u) / levels`` in the cell of ``x``."""
        return uniform_dequantize(x, levels), x.new_zeros(x.shape[0])


class VariationalDequantizer(nn.Module):
    """Flow++'s ``q(u|x)``, ``u = σ(g(ε; x))``, for images of ``shape = (C, H, W)`` with ``H · W ≥ 2``: ``couplings``
    affine couplings of the noise with alternating checkerboard masks, each conditioned on the kept noise and, as its
    context, the whole image by a :func:`~dgm.nn.resnet.resnet` of width ``channels`` with ``blocks`` blocks (see the
    module docstring). It starts as ``u = σ(ε)``."""

    def __init__(self, shape: tuple[int, int, int], couplings: int = 4, channels: int = 32, blocks: int = 1):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"the variational dequantizer takes images of shape (C, H, W), got shape {tuple(shape)}")
        check_integer(couplings, "couplings", 1)
        self.noise = StandardNormal(shape)
        self.flow = Compose(*(
            resnet_coupling(checkerboard_mask(shape, k % 2), Affine(), channels, blocks, context_channels=shape[0])
            for k in range(couplings)))

    def noise_to_offset(self, noise: Tensor, x: Tensor, levels: int) -> tuple[Tensor, Tensor]:
        """``u = σ(g(ε; x))`` and ``log|det ∂u/∂ε|`` for the standard normal noise ``ε`` (``noise``)."""
        image = x / (levels - 1) - 0.5
        logits, log_abs_det = self.flow(noise, context=image)
        log_sigmoid_derivative = _sum_per_example(-F.softplus(logits) - F.softplus(-logits))
        return torch.sigmoid(logits), log_abs_det + log_sigmoid_derivative

    def forward(self, x: Tensor, levels: int) -> tuple[Tensor, Tensor]:
        """``(y, log q(u|x))`` with ``y = (x + u) / levels``, ``u ∼ q(·|x)``."""
        noise = self.noise.sample(len(x))
        offset, log_abs_det = self.noise_to_offset(noise, x, levels)
        return (x + offset) / levels, self.noise.log_prob(noise) - log_abs_det


def make_dequantizer(dequantization: str, shape: tuple[int, ...]) -> nn.Module:
    """The dequantizer named ``"uniform"`` or ``"variational"`` (with its default size) for data of ``shape``."""
    if dequantization == "uniform":
        return UniformDequantizer()
    if dequantization == "variational":
        return VariationalDequantizer(shape)
    raise ValueError(f"dequantization must be 'uniform' or 'variational', got {dequantization!r}")


SAMPLE_REDRAWS = 10  # rounds of drawing again the samples whose inverse is not finite


def _not_finite(y: Tensor) -> Tensor:
    """Whether each example of ``y`` ``(N, …)`` holds a value that is not finite, ``(N,)``."""
    return ~torch.isfinite(y.flatten(1)).all(dim=1)


class DequantizedFlow(GenerativeModel):
    """Base class of flows on discrete data ``0 .. levels−1`` of shape ``config["shape"]``.

    A subclass builds ``flow``, a :class:`~dgm.flows.bijection.Compose` from ``y ∈ [0, 1)^D`` to the latent ``z``
    (typically a :class:`LogitTransform` first), and its ``dequantizer``, a :class:`UniformDequantizer` or a
    :class:`VariationalDequantizer` (:func:`make_dequantizer` builds them by name); ``log_prob`` is the bound of the
    module docstring, hence ``likelihood = "lower_bound"``. ``base`` is the distribution of ``z``, the standard
    normal by default (see :class:`~dgm.flows.model.FlowModel`).
    """

    likelihood = "lower_bound"

    def __init__(self, flow: Compose, dequantizer: nn.Module, base: BaseDistribution | None = None):
        super().__init__()
        check_integer(self.config["levels"], "levels", 2)
        self.flow = flow
        self.dequantizer = dequantizer
        self.base = StandardNormal(self.config["shape"]) if base is None else base

    @property
    def levels(self) -> int:
        return self.config["levels"]

    def continuous_log_prob(self, y: Tensor) -> Tensor:
        """``log p(y)`` of the flow's density on ``[0, 1)^D``, shape ``(N,)``."""
        z, log_abs_det = self.flow(y)
        return self.base.log_prob(z) + log_abs_det

    def _log_weights(self, x: Tensor) -> Tensor:
        """``log p(y) − log q(u|x) − D log L`` for one draw ``u ∼ q(·|x)`` per example, shape ``(N,)``."""
        y, log_q = self.dequantizer(x, self.levels)
        return self.continuous_log_prob(y) - log_q - x[0].numel() * math.log(self.levels)

    def log_prob(self, x: Tensor, samples: int = 1) -> Tensor:
        """The importance-weighted bound ``L_K`` with ``K = samples`` draws of the dequantizer, a lower bound on
        ``log P(x)`` that rises to it as ``K`` grows (module docstring), shape ``(N,)``."""
        return importance_weighted_bound(self._log_weights, x, samples)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """The negative bound ``−L_1`` in nats per example (Flow++ eq. 12), also logged in bits per dimension."""
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bpd": nll / (x[0].numel() * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """Flow samples ``y = f⁻¹(z)`` rounded to ``floor(clip(y · L, 0, L−1))``; ``temperature`` as in
        :func:`~dgm.flows.model.sample_base`.

        A base draw far in its tail can leave the floating-point range inside the inverse flow (an intermediate
        value beyond 3.4e38 in float32, then ``inf − inf``): about 1 sample in 1000 of the ``glow-mnist`` recipe.
        Such samples, not finite, are drawn again (up to ``SAMPLE_REDRAWS`` rounds, with a warning that counts
        them), so the samples follow the model conditioned on staying finite."""
        y = self.flow.inverse(sample_base(self.base, n, temperature))[0]
        overflowed = _not_finite(y)
        redrawn = int(overflowed.sum())
        for _ in range(SAMPLE_REDRAWS):
            if not overflowed.any():
                break
            y[overflowed] = self.flow.inverse(sample_base(self.base, int(overflowed.sum()), temperature))[0]
            overflowed = _not_finite(y)
        if overflowed.any():
            raise FloatingPointError(f"{int(overflowed.sum())} of {n} samples were still not finite after "
                                     f"{SAMPLE_REDRAWS} redraws: the flow's inverse overflows for typical draws")
        if redrawn:
            warnings.warn(f"{redrawn} of {n} samples overflowed inside the inverse flow and were drawn again")
        return torch.floor((y * self.levels).clamp(0, self.levels - 1))

    def latent_codes(self, x: Tensor) -> Tensor:
        """The latent ``z = f(y)`` of a dequantized copy ``y`` of each example."""
        y, _ = self.dequantizer(x, self.levels)
        return self.flow(y)[0]
