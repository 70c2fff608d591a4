"""Masks for vector couplings and fixed permutations of vector coordinates.

A coupling leaves its kept coordinates unchanged, so a flow alternates which coordinates it keeps (RealNVP, Dinh et
al., 2017, §3.5) or permutes the coordinates between layers (NICE, Dinh et al., 2015, §5.1; MAF, Papamakarios et al.,
2017, §3.2 reverses the ordering between autoregressive layers). A permutation has ``|det| = 1``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dgm.core import check_integer
from dgm.flows.bijection import Bijection


def alternating_mask(dim: int, parity: int) -> Tensor:
    """The vector mask ``b_j = 1`` (kept) for ``j + parity`` even, as 0/1 floats of shape ``(dim,)``."""
    check_integer(dim, "dim", 2)
    return ((torch.arange(dim) + parity) % 2 == 0).float()


def random_half_mask(dim: int, seed: int) -> Tensor:
    """A mask keeping ``⌊dim / 2⌋`` coordinates chosen by a private generator seeded with ``seed``."""
    check_integer(dim, "dim", 2)
    kept = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))[:dim // 2]
    return torch.zeros(dim).index_fill(0, kept, 1.0)


class Permutation(Bijection):
    """``z = x[:, order]`` for vectors ``(N, D)``; ``order`` is a permutation of ``0..D-1``."""

    def __init__(self, order: Tensor):
        super().__init__()
        if order.dim() != 1 or not torch.equal(order.sort().values, torch.arange(len(order))):
            raise ValueError(f"order must be a permutation of 0..D-1, got {order.tolist()}")
        self.register_buffer("order", order.long())
        self.register_buffer("inverse_order", torch.argsort(order))

    @classmethod
    def reverse(cls, dim: int) -> "Permutation":
        """The reversal ``z_j = x_{D-1-j}``."""
        return cls(torch.arange(check_integer(dim, "dim", 1) - 1, -1, -1))

    @classmethod
    def random(cls, dim: int, seed: int) -> "Permutation":
        """A fixed random permutation drawn by a private generator seeded with ``seed``."""
        return cls(torch.randperm(check_integer(dim, "dim", 1), generator=torch.Generator().manual_seed(seed)))

    def _check(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != len(self.order):
            raise ValueError(f"Permutation expects vectors of shape (N, {len(self.order)}), got {tuple(x.shape)}")
        return x

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._check(x)[:, self.order], x.new_zeros(len(x))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._check(z)[:, self.inverse_order], z.new_zeros(len(z))
