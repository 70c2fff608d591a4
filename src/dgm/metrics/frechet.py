"""The Fréchet distance between two Gaussians, and the streaming mean and covariance it is computed from.

For ``N(μ₁, Σ₁)`` and ``N(μ₂, Σ₂)`` (Dowson & Landau, 1982; FID of Heusel et al., 2017, eq. 6):

    d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}.

``Σ₁Σ₂`` is similar to the symmetric positive semi-definite matrix ``U Σ₂ Uᵀ`` for the Cholesky factor ``Σ₁ = Uᵀ U``,
so ``tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(U Σ₂ Uᵀ)``: the reduction of the symmetric-definite eigenproblem ``Σ₂Σ₁x = λx`` to
standard form (Golub & Van Loan, *Matrix Computations*, §8.7.2). LAPACK does it in three calls: ``dpotrf`` (the
factor), ``dsygst`` (``U Σ₂ Uᵀ`` in one pass, half the work of two matrix products since it uses the symmetry) and
``dsyevr`` (eigenvalues only). When Σ₁ is singular (fewer samples than dimensions) the factor comes from the pivoted
Cholesky factorisation ``Pᵀ Σ₁ P = Uᵀ U`` (``dpstrf``, Higham 2002, §10.3) with ``U`` of rank ``r``: the nonzero
eigenvalues are then those of the leading ``r x r`` block of ``U (Pᵀ Σ₂ P) Uᵀ``, and the zero ones are left out
exactly. Both paths are real and never produce the complex square roots of ``scipy.linalg.sqrtm`` on rank-deficient
covariances. All in float64; scipy's LAPACK runs with as many threads as torch (``torch.set_num_threads``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits
from torch import Tensor

from dgm.checkpoint import read_weights, write_tensors

FLOAT = torch.float64


def _product_eigenvalues(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """The nonzero eigenvalues of ``Σ₁Σ₂`` for symmetric positive semi-definite ``Σ₁``, ``Σ₂`` (module docstring).

    A symmetric matrix is its own transpose, so the row-major arrays go to LAPACK as column-major ones (``.T``)
    without a copy; only their upper triangles are read."""
    other = sigma2.numpy()
    factor, info = lapack.dpotrf(sigma1.numpy().T, lower=0, clean=0)
    rank = len(factor)
    if info != 0:  # Σ₁ is singular: pivoted Cholesky, rows past the rank set to zero
        factor, pivots, rank, _ = lapack.dpstrf(sigma1.numpy().T, lower=0)
        if rank == 0:
            return torch.zeros(0, dtype=FLOAT)
        factor[rank:] = 0
        order = pivots - 1
        other = other[np.ix_(order, order)]
    inner, _ = lapack.dsygst(other.T, factor, itype=2, lower=0)  # info ≠ 0 only for illegal arguments
    eigenvalues, _, _, _, info = lapack.dsyevr(inner[:rank, :rank], compute_v=0, lower=0, overwrite_a=1)
    if info != 0:
        raise RuntimeError(f"LAPACK dsyevr did not converge (info {info})")
    return torch.from_numpy(eigenvalues)


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``tr (Σ₁ Σ₂)^{1/2}`` of two symmetric positive semi-definite float64 matrices: ``Σᵢ √λᵢ(Σ₁Σ₂)``."""
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
        eigenvalues = _product_eigenvalues(sigma1, sigma2)
    return eigenvalues.clamp(min=0).sqrt().sum()


def _as_float64(value, name: str, dims: int) -> Tensor:
    tensor = torch.as_tensor(value, dtype=FLOAT).detach().cpu()
    if tensor.dim() != dims:
        raise ValueError(f"{name} must be a {'vector' if dims == 1 else 'square matrix'}, "
                         f"got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The squared Fréchet distance ``d²`` above between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (tensors or
    arrays; computed in float64)."""
    mu1, mu2 = _as_float64(mu1, "mu1", 1), _as_float64(mu2, "mu2", 1)
    sigma1, sigma2 = _as_float64(sigma1, "sigma1", 2), _as_float64(sigma2, "sigma2", 2)
    d = len(mu1)
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"means and covariances must have shapes (D,) and (D, D) with one D, got "
                         f"{tuple(mu1.shape)}, {tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}")
    distance = ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)
    return distance.clamp(min=0).item()


class GaussianStatistics:
    """Mean and covariance of a stream of feature vectors, updated batch by batch.

    Batches are merged with the pairwise update of Chan, Golub & LeVeque (1979): the centred sums of squares of
    two parts combine exactly as ``M = M_a + M_b + δ δᵀ n_a n_b / n`` with ``δ = mean_b − mean_a``, which keeps
    float64 accuracy whatever the offset of the features. The covariance is the unbiased one (``np.cov``).
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self.mean = torch.zeros(dim, dtype=FLOAT)
        self.squares = torch.zeros(dim, dim, dtype=FLOAT)  # Σ (x − mean)(x − mean)ᵀ

    def update(self, features: Tensor) -> "GaussianStatistics":
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must have shape (N, {self.dim}), got {tuple(features.shape)}")
        if len(features) == 0:
            return self
        batch = features.detach().to("cpu", FLOAT)
        batch_mean = batch.mean(0)
        centred = batch - batch_mean
        n_a, n_b = self.count, len(batch)
        delta = batch_mean - self.mean
        self.count = n_a + n_b
        self.mean = self.mean + delta * (n_b / self.count)
        self.squares += centred.T @ centred + torch.outer(delta, delta) * (n_a * n_b / self.count)
        return self

    @property
    def covariance(self) -> Tensor:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        return self.squares / (self.count - 1)

    def distance(self, other: "GaussianStatistics") -> float:
        """The Fréchet distance between the Gaussians fitted to this stream and ``other``."""
        return frechet_distance(self.mean, self.covariance, other.mean, other.covariance)

    def save(self, path) -> None:
        """Write the statistics to a safetensors file (atomically)."""
        tensors = {"mean": self.mean.contiguous(), "squares": self.squares.contiguous(),
                   "count": torch.tensor(self.count)}
        write_tensors(Path(path), tensors)

    @classmethod
    def load(cls, path) -> "GaussianStatistics":
        tensors = read_weights(Path(path))
        statistics = cls(len(tensors["mean"]))
        statistics.mean, statistics.squares = tensors["mean"], tensors["squares"]
        statistics.count = int(tensors["count"])
        return statistics


def fit_gaussian(features: Tensor) -> GaussianStatistics:
    """Mean and covariance of ``(N, D)`` features."""
    return GaussianStatistics(features.shape[-1]).update(features)
