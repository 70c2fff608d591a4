"""Noise schedules: the forward process ``q(x_t | x_0) = N(α(t) x_0, σ(t)² I)`` for times ``t ∈ [0, 1]``.

Every sampler and likelihood of :mod:`dgm.models.diffusion` reads a schedule through four functions of ``t`` only,
so that one formula serves the variance-preserving process of DDPM and the variance-exploding one of NCSN:

- ``alpha(t)`` and ``sigma(t)``, the scale of the data and of the noise in ``x_t = α(t) x_0 + σ(t) ε``;
- ``drift(t) = d log α / dt`` and ``diffusion_squared(t) = dσ²/dt − 2 (d log α/dt) σ²``, the coefficients
  ``f(t)`` and ``g(t)²`` of the SDE ``dx = f(t) x dt + g(t) dw`` whose marginals these are (Song et al., 2021,
  "Score-based generative modeling through stochastic differential equations", eqs. 5 and 11; Kingma, Salimans,
  Poole & Ho, 2021, "Variational diffusion models", appendix A).

The process is also trained and sampled on ``steps`` discrete times ``t_i = i / steps``, ``i = 1 … steps`` (DDPM's
``T``); ``t_0 = 0``.

- :class:`VariancePreserving` (DDPM, Ho, Jain & Abbeel, 2020), ``σ² = 1 − α²`` and ``g² = −2 f``, with ``ᾱ = α²``:
  ``"linear"``, the continuous limit of DDPM's ``β_i`` rising linearly from ``10⁻⁴`` to ``0.02`` over 1000 steps,
  ``β(t) = β_min + t (β_max − β_min)`` with ``β_min = 0.1``, ``β_max = 20`` and ``log α(t) = −½ ∫₀ᵗ β`` (the VP SDE
  of Song et al., eq. 32), smooth, so that ODE solvers take long steps; its discrete ``β_i = 1 − ᾱ(t_i)/ᾱ(t_{i−1})``
  lie within 1% (plus 10⁻⁵) of DDPM's at ``T = 1000`` and follow improved DDPM's ``1000/T`` rule for other ``T``.
  ``"cosine"``, improved DDPM's (Nichol & Dhariwal, 2021, eq. 17): ``β_i`` from ``ᾱ(t) ∝ cos²(π/2 · (t + s)/(1 + s))``
  clipped at ``0.999``, ``ᾱ_i = Π_{j≤i} (1 − β_j)``, with ``log α`` linear in ``t`` between the steps, the
  continuous schedule that DPM-Solver gives a discrete DDPM (Lu et al., 2022, "DPM-Solver", appendix D).
- :class:`VarianceExploding` (NCSN, Song & Ermon, 2019; the VE SDE of Song et al., 2021, eq. 30): ``α = 1`` and
  ``σ`` geometric in ``t``, ``σ(t) = σ_min (σ_max / σ_min)^((L t − 1)/(L − 1))`` with ``L = steps``, so that the
  ``L`` discrete times carry NCSN's ladder, ``σ(t_1) = σ_min … σ(t_L) = σ_max``; ``f = 0`` and
  ``g² = dσ²/dt = 2 σ² log(σ_max/σ_min) L/(L − 1)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer

VP_KINDS = ("linear", "cosine")
COSINE_OFFSET = 0.008  # improved DDPM's s, which keeps β_1 from being too small
MAX_BETA = 0.999  # improved DDPM's clip of the cosine schedule's last steps
BISECTION_STEPS = 60  # halvings of [start, 1] that find a time from its log-SNR to float64's resolution
BETA_MIN, BETA_MAX = 0.1, 20.0  # the linear schedule's β(t) at t = 0 and 1: DDPM's 1e-4 and 0.02 times 1000 steps


class NoiseSchedule(nn.Module):
    """``α(t)``, ``σ(t)``, ``f(t)``, ``g(t)²`` of the module docstring on ``steps`` discrete times (subclasses)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = check_integer(steps, "steps", 1)

    def alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def drift(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def diffusion_squared(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def log_snr(self, t: Tensor) -> Tensor:
        """``log(α²/σ²)``, the log signal-to-noise ratio (Kingma et al., 2021, §3.2): falls as ``t`` grows."""
        return 2 * (self.alpha(t).log() - self.sigma(t).log())

    def time_of_log_snr(self, log_snr: Tensor, start: float = 0.0) -> Tensor:
        """The time ``t ∈ [start, 1]`` whose :meth:`log_snr` is the given one, ``(N,)``, by bisection in float64
        (the log-SNR falls monotonically in ``t``; values outside its range give the interval's ends); schedules
        with a closed form override it."""
        target = log_snr.double()
        low, high = torch.full_like(target, start), torch.ones_like(target)
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            above = self.log_snr(middle) > target
            low, high = torch.where(above, middle, low), torch.where(above, high, middle)
        return ((low + high) / 2).to(log_snr.dtype)

    def times(self, count: int | None = None) -> Tensor:
        """``count`` (by default all ``steps``) of the discrete times ``t_i``, evenly spaced from ``t_steps = 1``
        down to the first step, descending, as the samplers walk them (DDIM's strided subsequence, Song, Meng &
        Ermon, 2021, §4.2; the "trailing" spacing that always includes ``t = 1``)."""
        count = self.steps if count is None else check_integer(count, "the number of sampling steps", 1)
        if count > self.steps:
            raise ValueError(f"the sampler can take at most the schedule's {self.steps} steps, got {count}")
        indices = torch.linspace(self.steps, 0, count + 1)[:-1].round()
        return indices.clamp(min=1) / self.steps

    def diffuse(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t = α(t) x_0 + σ(t) ε`` with one time per example, ``t`` ``(N,)``."""
        return broadcast(self.alpha(t), x0) * x0 + broadcast(self.sigma(t), x0) * noise


def broadcast(per_example: Tensor, like: Tensor) -> Tensor:
    """``(N,)`` → ``(N, 1, …, 1)``, to multiply each example of ``like`` ``(N, …)``; a tensor that already has
    ``like``'s dimensions (learned variances, one per entry) is returned as it is."""
    if per_example.dim() == like.dim():
        return per_example
    return per_example.reshape(-1, *[1] * (like.dim() - 1))


def cosine_betas(steps: int) -> Tensor:
    """Improved DDPM's ``β_i = 1 − ᾱ(t_i)/ᾱ(t_{i−1})``, ``ᾱ(t) = cos²(π/2 · (t + s)/(1 + s))`` up to a constant,
    clipped at ``0.999``, in float64."""
    t = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    alpha_bar = torch.cos((t + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=MAX_BETA)


class VariancePreserving(NoiseSchedule):
    """The DDPM process with the ``kind`` ``"linear"`` or ``"cosine"`` schedule on ``steps`` steps (module
    docstring)."""

    def __init__(self, steps: int = 1000, kind: str = "linear"):
        super().__init__(steps)
        if kind not in VP_KINDS:
            raise ValueError(f"the variance-preserving schedule is one of {', '.join(VP_KINDS)}, got {kind!r}")
        self.kind = kind
        if kind == "cosine":  # log α at t_0 = 0, t_1, …, t_T in float64, interpolated linearly
            table = torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * torch.log1p(-cosine_betas(steps)).cumsum(0)])
            self.register_buffer("log_alpha_at_steps", table, persistent=False)

    def betas(self) -> Tensor:
        """``β_i = 1 − ᾱ_i / ᾱ_{i−1}``, ``i = 1 … steps``, in float64."""
        times = torch.linspace(0, 1, self.steps + 1, dtype=torch.float64)
        return -torch.expm1(2 * self.log_alpha(times).diff())

    def _step_and_fraction(self, t: Tensor) -> tuple[Tensor, Tensor]:
        position = t.double().clamp(0, 1) * self.steps
        step = position.floor().clamp(max=self.steps - 1).long()
        return step, position - step

    def log_alpha(self, t: Tensor) -> Tensor:
        if self.kind == "linear":
            return -0.25 * t ** 2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
        step, fraction = self._step_and_fraction(t)
        table = self.log_alpha_at_steps
        return (table[step] + fraction * (table[step + 1] - table[step])).to(t.dtype)

    def alpha(self, t: Tensor) -> Tensor:
        return self.log_alpha(t).exp()

    def sigma(self, t: Tensor) -> Tensor:
        return (-torch.expm1(2 * self.log_alpha(t).double())).sqrt().to(t.dtype)

    def drift(self, t: Tensor) -> Tensor:
        if self.kind == "linear":
            return -0.5 * (BETA_MIN + t * (BETA_MAX - BETA_MIN))
        step, _ = self._step_and_fraction(t)
        return (self.steps * self.log_alpha_at_steps.diff()[step]).to(t.dtype)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return -2 * self.drift(t)

    def time_of_log_snr(self, log_snr: Tensor, start: float = 0.0) -> Tensor:
        """Linear: ``ᾱ = sigmoid(λ)``, and ``log α = ½ log ᾱ`` solves ``¼ (β_max − β_min) t² + ½ β_min t + log α = 0``
        for ``t``; the cosine schedule by bisection."""
        if self.kind != "linear":
            return super().time_of_log_snr(log_snr, start)
        log_alpha = -0.5 * F.softplus(-log_snr.double())
        spread = BETA_MAX - BETA_MIN
        t = (-0.5 * BETA_MIN + (0.25 * BETA_MIN ** 2 - spread * log_alpha).sqrt()) / (0.5 * spread)
        return t.clamp(start, 1).to(log_snr.dtype)


class VarianceExploding(NoiseSchedule):
    """NCSN's geometric noise ladder of ``steps`` levels from ``sigma_max`` (``t = 1``) to ``sigma_min``
    (``t = 1/steps``) with ``α = 1`` (module docstring)."""

    def __init__(self, steps: int = 10, sigma_min: float = 0.01, sigma_max: float = 1.0):
        super().__init__(check_integer(steps, "steps (the number of noise levels)", 2))
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"the noise levels need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.log_ratio_per_time = math.log(sigma_max / sigma_min) * steps / (steps - 1)  # d log σ / dt

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp((t - 1 / self.steps) * self.log_ratio_per_time)

    def drift(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return 2 * self.log_ratio_per_time * self.sigma(t) ** 2

    def time_of_log_snr(self, log_snr: Tensor, start: float = 0.0) -> Tensor:
        """``λ = −2 log σ`` inverted: ``t = 1/L + (log σ − log σ_min) / (d log σ / dt)``."""
        log_sigma = -0.5 * log_snr.double()
        t = 1 / self.steps + (log_sigma - math.log(self.sigma_min)) / self.log_ratio_per_time
        return t.clamp(start, 1).to(log_snr.dtype)
