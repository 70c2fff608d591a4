"""Multi-head dot-product attention (Vaswani et al., 2017, "Attention is all you need", §3.2, eqs. 1 and §3.2.2):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V,      MultiHead = [head_1, …, head_h] W_O,

one core for causal attention (PixelSNAIL, :class:`dgm.nn.causal.CausalAttention`) and for attention over all
positions of an image (:class:`SelfAttention2d`, the attention block of SAGAN and DDPM).

The core calls PyTorch's fused ``scaled_dot_product_attention``. Its fused (flash) kernel on the CPU needs one head
width for queries, keys and values, else a slow kernel forms the whole ``L x L`` matrix; zeros appended to the
narrower side change no dot product, and the scale keeps the keys' own ``1/√d_k``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.nn.blocks import group_norm


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(N, L, D)`` → ``(N, heads, L, D/heads)``: head ``h`` takes features ``h·D/heads … (h+1)·D/heads − 1``."""
    n, length, dim = x.shape
    return x.view(n, length, heads, dim // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """The inverse of :func:`split_heads`: ``(N, heads, L, d)`` → ``(N, L, heads·d)``, the heads side by side."""
    n, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * dim)


def dot_product_attention(queries: Tensor, keys: Tensor, values: Tensor, causal: bool = False) -> Tensor:
    """``softmax(q kᵀ / √d_k) v`` for every head, ``(N, heads, L, d_k)``, ``(N, heads, S, d_k)``,
    ``(N, heads, S, d_v)`` → ``(N, heads, L, d_v)``; ``causal`` lets query ``i`` see keys ``j ≤ i`` only."""
    key_dim, value_dim = queries.shape[-1], values.shape[-1]
    width = max(key_dim, value_dim)
    queries, keys = F.pad(queries, (0, width - key_dim)), F.pad(keys, (0, width - key_dim))
    attended = F.scaled_dot_product_attention(queries, keys, F.pad(values, (0, width - value_dim)),
                                              is_causal=causal, scale=key_dim ** -0.5)
    return attended[..., :value_dim]


class SelfAttention2d(nn.Module):
    """``x + W_O · MultiHead(norm(x))`` over all ``H·W`` positions of an image ``(N, channels, H, W)``: the
    non-local block of SAGAN (Zhang, Goodfellow, Metaxas & Odena, 2019, §3, eqs. 1–3) and the attention block of
    DDPM's U-Net (Ho, Jain & Abbeel, 2020, appendix B), with ``heads`` heads of ``channels/heads`` dimensions.

    Queries, keys and values are 1x1 projections (linear maps of each position's channels) of the group-normalised
    input. The output projection ``W_O`` starts at zero, so the block starts as the identity (SAGAN's ``γ = 0``,
    DDPM's zero-initialised ``proj_out``) and learns how much non-local evidence to add.
    """

    def __init__(self, channels: int, heads: int = 1, groups: int = 32):
        super().__init__()
        check_integer(heads, "heads", 1)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.query_key_value = nn.Linear(channels, 3 * channels)
        self.output = nn.Linear(channels, channels)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: Tensor) -> Tensor:
        n, channels, height, width = x.shape
        positions = self.norm(x).flatten(2).transpose(1, 2)  # (N, H·W, channels)
        queries, keys, values = (split_heads(part, self.heads)
                                 for part in self.query_key_value(positions).chunk(3, dim=-1))
        attended = self.output(merge_heads(dot_product_attention(queries, keys, values)))
        return x + attended.transpose(1, 2).reshape(n, channels, height, width)
