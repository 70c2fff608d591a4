"""NICE (Dinh, Krueger & Bengio, 2015, "NICE: Non-linear Independent Components Estimation") for vectors.

A stack of additive couplings ``y = b ⊙ x + (1 − b) ⊙ (x + m(b ⊙ x))`` (eq. 5) with alternating masks, each volume
preserving, followed by the diagonal scaling layer of §3.3, ``z = exp(s) ⊙ h``, the only layer that changes volume:
``log p(x) = log N(z; 0, I) + Σ_i s_i`` (eq. 7 with a Gaussian prior).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.core import check_integer, vector_dim
from dgm.flows import Additive, Bijection, Compose, FlowModel, alternating_mask, mlp_coupling
from dgm.registry import register_model


class DiagonalScaling(Bijection):
    """``z = exp(s) ⊙ x`` with a learned log-scale ``s`` of shape ``(D,)``, starting at 0 (NICE §3.3)."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(len(x))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * torch.exp(-self.log_scale), -self.log_scale.sum().expand(len(z))


@register_model("nice", "NICE: additive coupling flow with a final diagonal scaling, exact likelihood (vectors)")
class NICE(FlowModel):
    """NICE on vectors of shape ``(D,)``, ``D ≥ 2``: ``n_layers`` additive couplings (the paper uses 4) with MLP
    conditioners of widths ``hidden``, then a diagonal scaling."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 4, hidden: Sequence[int] = (64, 64)):
        dim = vector_dim(shape, "NICE")
        couplings = [mlp_coupling(alternating_mask(dim, k), hidden, Additive())
                     for k in range(check_integer(n_layers, "n_layers", 1))]
        super().__init__(Compose(*couplings, DiagonalScaling(dim)))
