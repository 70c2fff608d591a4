"""Kernel Inception Distance (Bińkowski et al., 2018, "Demystifying MMD GANs", §4 and appendix D).

KID is the squared maximum mean discrepancy between real and generated features under the cubic polynomial kernel
``k(x, y) = (xᵀy / d + 1)³``, estimated without bias (Gretton et al., 2012, eq. 3):

    MMD²_u = Σ_{i≠j} k(xᵢ, xⱼ) / m(m−1) + Σ_{i≠j} k(yᵢ, yⱼ) / n(n−1) − 2 Σ_{i,j} k(xᵢ, yⱼ) / mn,

averaged over random subsets of both sets (as the paper's reference code does); its expectation is the true MMD²,
so it is 0 on average for equal distributions and may be negative on one draw.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.core import check_integer


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3) -> Tensor:
    """``(x yᵀ / d + 1)^degree`` for all pairs of rows."""
    return (x @ y.T / x.shape[1] + 1) ** degree


def mmd_unbiased(x: Tensor, y: Tensor, degree: int = 3) -> Tensor:
    """The unbiased estimate MMD²_u above between the rows of ``x`` (m ≥ 2) and of ``y`` (n ≥ 2)."""
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x, degree), polynomial_kernel(y, y, degree)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * polynomial_kernel(x, y, degree).mean()


def check_feature_sets(real: Tensor, fake: Tensor) -> None:
    """Refuse feature sets that are not (N, D) and (M, D) with one D."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must have shapes (N, D) and (M, D) with one D, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> dict[str, float]:
    """KID of feature sets ``(N, D)`` and ``(M, D)``: the mean and standard deviation of MMD²_u over ``subsets``
    random subsets of ``min(subset_size, N, M)`` rows of each, drawn without replacement (float64)."""
    check_feature_sets(real, fake)
    check_integer(subsets, "subsets", 1)
    size = min(check_integer(subset_size, "subset_size", 2), len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors in each set, got {len(real)} and {len(fake)}")
    generator = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double()
    values = torch.stack([mmd_unbiased(real[torch.randperm(len(real), generator=generator)[:size]],
                                       fake[torch.randperm(len(fake), generator=generator)[:size]])
                          for _ in range(subsets)])
    std = values.std().item() if subsets > 1 else math.nan
    return {"kid": values.mean().item(), "kid_std": std}
