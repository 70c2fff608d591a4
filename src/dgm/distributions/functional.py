"""Elementwise formulas shared by the distributions of :mod:`dgm.distributions`.

- The Gaussian log-density and entropy in terms of the log-scale (Bishop, 2006, eqs. 2.42 and 1.110, one dimension):

      log N(x; μ, σ²) = -½ ((x - μ)/σ)² - log σ - ½ log 2π,        H = log σ + ½ (1 + log 2π).

- The KL divergence between two diagonal Gaussians, per dimension (Kingma & Welling, 2014, appendix B, for a
  standard normal second argument; the course's ``get_normal_KL``):

      KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) = log σ₂ − log σ₁ + (σ₁² + (μ₁ − μ₂)²) / (2σ₂²) − ½.

- The log-density of the equal mixture of ``N`` diagonal Gaussians (a VampPrior, an aggregate posterior) at ``S``
  points as two matrix products instead of an ``S × N × D`` table:

      Σ_j log N(z_j; μ_mj, σ_mj²) = −½ Σ_j z_j² / σ_mj² + Σ_j z_j μ_mj / σ_mj² + c_m,
      c_m = −½ Σ_j μ_mj² / σ_mj² − Σ_j log σ_mj − (D/2) log 2π,

  in float64, since the terms reach ``(μ/σ)² ≈ 10⁹`` for a sharp component and only their sum matters.

- ``log(1 - e^{-d})`` for ``d > 0``, evaluated as ``log(-expm1(-d))`` for ``d < log 2`` and ``log1p(-e^{-d})``
  otherwise, which is accurate for every ``d`` (Mächler, 2012, "Accurately Computing log(1 − exp(−|a|))", eq. 7).
  The discretized likelihoods need it for the log of a difference of two CDFs.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def normal_log_density(x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """``log N(x; loc, e^{2 log_scale})``, elementwise (broadcasting)."""
    return -0.5 * ((x - loc) * torch.exp(-log_scale)) ** 2 - log_scale - HALF_LOG_TWO_PI


def normal_entropy(log_scale: Tensor) -> Tensor:
    """The differential entropy ``log σ + ½ (1 + log 2π)`` of a Gaussian of scale ``σ = e^log_scale``, elementwise."""
    return log_scale + (0.5 + HALF_LOG_TWO_PI)


def normal_kl(loc: Tensor, log_scale: Tensor, other_loc: Tensor | float = 0.0,
              other_log_scale: Tensor | float = 0.0) -> Tensor:
    """``KL(N(loc, e^{2 log_scale}) ‖ N(other_loc, e^{2 other_log_scale}))``, elementwise (broadcasting); the
    defaults make the second Gaussian the standard normal."""
    other_log_scale = torch.as_tensor(other_log_scale, dtype=loc.dtype, device=loc.device)
    variance_ratio = torch.exp(2 * (log_scale - other_log_scale))
    return (other_log_scale - log_scale + 0.5 * (variance_ratio + (loc - other_loc) ** 2
                                                 * torch.exp(-2 * other_log_scale)) - 0.5)


MIXTURE_ELEMENTS = 2 ** 23  # (point, component) log-densities per chunk of equal_mixture_log_density


def equal_mixture_log_density(z: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """``log (1/N) Σ_m N(z; loc_m, diag e^{2 log_scale_m})`` of points ``z`` ``(S, D)`` under the ``N`` components
    ``loc``, ``log_scale`` ``(N, D)``, shape ``(S,)`` in float64 (see the module docstring), by chunks of points."""
    loc, log_scale, z = loc.double(), log_scale.double(), z.double()
    n, dim = loc.shape
    precision = torch.exp(-2 * log_scale)
    constant = -0.5 * (loc ** 2 * precision).sum(dim=1) - log_scale.sum(dim=1) - dim * HALF_LOG_TWO_PI
    chunk = max(1, MIXTURE_ELEMENTS // n)
    return torch.cat([torch.logsumexp(-0.5 * part ** 2 @ precision.T + part @ (loc * precision).T + constant, dim=1)
                      for part in z.split(chunk)]) - math.log(n)


def log1mexp(d: Tensor) -> Tensor:
    """``log(1 - e^{-d})`` for ``d > 0``, accurate for small and large ``d`` (Mächler, 2012)."""
    near = d < math.log(2)  # each branch sees only the arguments it is accurate for: no inf in the unused one,
    # whose gradient torch.where would multiply by 0 into NaN
    return torch.where(near, torch.log(-torch.expm1(-d.clamp(max=math.log(2)))),
                       torch.log1p(-torch.exp(-d.clamp(min=math.log(2)))))
