"""Elementwise formulas shared by the distributions of :mod:`dgm.distributions`.

- The Gaussian log-density and entropy in terms of the log-scale (Bishop, 2006, eqs. 2.42 and 1.110, one dimension):

      log N(x; μ, σ²) = -½ ((x - μ)/σ)² - log σ - ½ log 2π,        H = log σ + ½ (1 + log 2π).

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


def log1mexp(d: Tensor) -> Tensor:
    """``log(1 - e^{-d})`` for ``d > 0``, accurate for small and large ``d`` (Mächler, 2012)."""
    return torch.where(d < math.log(2), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))
