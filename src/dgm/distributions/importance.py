"""The importance-weighted bound (Burda, Grosse & Salakhutdinov, 2016, "Importance Weighted Autoencoders", eq. 8),
shared by the models whose likelihood is an integral over a latent or noise variable, ``p(x) = ∫ p(x, u) du``:
VAEs (``u`` the latent code) and dequantized flows (``u`` the dequantization noise).

With a proposal ``q(u | x)`` and ``K`` independent draws ``u_k ∼ q(·|x)``, the importance weights
``w_k = p(x, u_k) / q(u_k | x)`` have mean ``p(x)``, and by Jensen's inequality

    L_K(x) = E[ log (1/K) Σ_k w_k ] ≤ log p(x),

with ``L_1 ≤ L_2 ≤ … ≤ L_K`` (Burda et al., Theorem 1) and ``L_K → log p(x)`` as ``K → ∞`` when the weights are
bounded. ``L_1`` is the evidence lower bound. One draw of ``log (1/K) Σ_k w_k`` is an estimate of ``L_K`` whose spread
shrinks as ``K`` grows.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from dgm.core import check_integer


def importance_weighted_bound(log_weights: Callable[[Tensor], Tensor], x: Tensor, samples: int) -> Tensor:
    """One draw of ``log (1/K) Σ_k w_k`` for each example of ``x`` (Burda et al., 2016, eq. 8), ``K = samples``.

    ``log_weights`` maps a batch ``(B, ...)`` to ``log w = log p(x, u) − log q(u|x)`` for one fresh draw
    ``u ∼ q(·|x)`` per example, shape ``(B,)``. It is called once, on the ``K`` copies of ``x`` stacked into one
    batch of ``K · N`` examples (copy ``k`` of example ``n`` at row ``k · N + n``), and the mean over copies is taken
    in log space by ``logsumexp``, so that no weight overflows. Returns shape ``(N,)``.
    """
    check_integer(samples, "samples", 1)
    copies = x.expand(samples, *x.shape).reshape(samples * len(x), *x.shape[1:])
    return log_mean_exp(log_weights(copies).view(samples, len(x)))


def log_mean_exp(log_weights: Tensor) -> Tensor:
    """``log (1/K) Σ_k exp(log_weights[k])`` over the first dimension (the ``K`` draws), by ``logsumexp`` so that no
    weight overflows: one draw of ``L_K`` from ``K`` log-weights per example, ``(K, N)`` → ``(N,)``."""
    return torch.logsumexp(log_weights, dim=0) - math.log(len(log_weights))
