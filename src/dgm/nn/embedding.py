"""The sinusoidal embedding of a time or noise level (Vaswani et al., 2017, "Attention is all you need", §3.5), as
DDPM embeds its step ``t`` (Ho, Jain & Abbeel, 2020, appendix B):

    e(t) = [sin(ω_0 t), …, sin(ω_{d/2-1} t), cos(ω_0 t), …, cos(ω_{d/2-1} t)],      ω_i = 10000^(−2i/d).

Vaswani et al. interleave the sines and cosines; putting them in two halves, as DDPM does, is a fixed permutation of
the same ``d`` features. The frequencies run geometrically from 1 to nearly ``1/10000``, so nearby steps differ in
the fast features and distant ones in the slow features; every feature lies in ``[−1, 1]`` and each pair
``(sin ω_i t, cos ω_i t)`` lies on the unit circle, so ``‖e(t)‖ = √(d/2)`` for every ``t``. ``t`` may be any real
number (a continuous time or a noise level, as in score-based models), not only an integer step.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.nn.mlp import mlp

MAX_PERIOD = 10_000


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """``e(t)`` of the module docstring for each of the times ``t`` ``(N,)``, shape ``(N, dim)``; ``dim`` even."""
    check_integer(dim, "dim", 2)
    if dim % 2:
        raise ValueError(f"the sinusoidal embedding pairs a sine with a cosine: dim must be even, got {dim}")
    if t.dim() != 1:
        raise ValueError(f"t must hold one time per example, shape (N,), got {tuple(t.shape)}")
    t = t if t.is_floating_point() else t.to(torch.get_default_dtype())
    frequencies = torch.exp(-math.log(MAX_PERIOD) * torch.arange(0, dim, 2, device=t.device, dtype=t.dtype) / dim)
    angles = t[:, None] * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """``MLP(e(t))``: the sinusoidal embedding of ``dim`` features, then ``Linear → SiLU → Linear`` to ``out_dim``
    features (DDPM: ``out_dim = 4·dim``, the default), the input of every residual block of a diffusion U-Net
    (:class:`dgm.nn.blocks.PreActivationResidualBlock`)."""

    def __init__(self, dim: int, out_dim: int | None = None):
        super().__init__()
        self.dim = dim
        out_dim = 4 * dim if out_dim is None else out_dim
        self.mlp = mlp(dim, [out_dim], out_dim, activation=nn.SiLU)

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal_embedding(t.to(self.mlp[0].weight.dtype), self.dim))
