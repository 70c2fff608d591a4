"""Causal building blocks: layers whose output at a position depends only on earlier positions.

Images are ordered in raster order (row by row, left to right); sequences in time.

- **Shifted convolutions** of PixelCNN++ (Salimans et al., 2017, §2.3–2.5). A *down-shifted* convolution pads
  ``kh - 1`` rows above and ``(kw - 1)/2`` columns on each side, so output row ``i`` sees input rows ``≤ i`` only; a
  *down-right-shifted* one pads ``kh - 1`` rows above and ``kw - 1`` columns on the left, so output ``(i, j)`` sees
  inputs at rows ``≤ i`` and columns ``≤ j`` only. Shifting the input one row down (:func:`shift_down`) or one column
  right (:func:`shift_right`) before the first layer excludes the current pixel, and two streams (one down, one
  down-right) cover everything above and to the left without the blind spot of masked convolutions. Strided
  versions downsample by 2 and the transposed versions upsample by 2 while keeping the streams causal.
- **Gated residual block** (PixelCNN++ §2.5, with the gates of Gated PixelCNN): ``x + a ⊙ σ(b)`` where
  ``[a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux)))))``; ``aux`` carries the other
  stream or the shortcut from the downsampling pass.
- **Causal attention over raster order** (PixelSNAIL, Chen et al., 2018, §3): position ``i`` attends to positions
  ``j < i`` only. The mask is strict because PixelSNAIL's keys and values see the input pixel at their own position.
  A null slot (key 0, value 0) precedes the keys, so the first position, which has nothing to attend to, receives
  zeros, and any query may put weight on "nothing"; the strict mask is then an ordinary causal mask over the slots,
  which PyTorch's fused ``scaled_dot_product_attention`` applies without forming the ``L x L`` matrix (the core
  shared with non-causal attention, :func:`dgm.nn.attention.dot_product_attention`).
- **Causal dilated 1D convolution** (WaveNet, van den Oord et al., 2016, §2.1): ``(k - 1)·d`` zeros on the left, so
  output ``t`` sees inputs ``t - (k-1)d, …, t - d, t``; :meth:`CausalConv1d.step` computes the output at the last
  position of a window of ``(k - 1)·d + 1`` inputs, the unit of cached (incremental) generation.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.attention import dot_product_attention, merge_heads, split_heads

Shift = Literal["down", "down_right", "pointwise"]
DEFAULT_KERNELS = {"down": (2, 3), "down_right": (2, 2), "pointwise": (1, 1)}


def shift_down(x: Tensor) -> Tensor:
    """Move an image batch ``(N, C, H, W)`` one row down, a row of zeros entering at the top."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def shift_right(x: Tensor) -> Tensor:
    """Move an image batch ``(N, C, H, W)`` (or a sequence ``(N, C, T)``) one step right, zeros entering at left."""
    return F.pad(x, (1, 0))[..., :-1]


def concat_elu(x: Tensor) -> Tensor:
    """``elu([x, -x])`` along the channels (PixelCNN++ §2.5): a non-linearity that keeps both signs' information."""
    return F.elu(torch.cat([x, -x], dim=1))


def _padding(shift: Shift, kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` zeros that make a convolution down- or down-right-shifted."""
    height, width = kernel
    if shift == "down":
        if width % 2 == 0:
            raise ValueError(f"a down-shifted convolution needs an odd kernel width, got {kernel}")
        return ((width - 1) // 2, (width - 1) // 2, height - 1, 0)
    if shift == "down_right":
        return (width - 1, 0, height - 1, 0)
    raise ValueError(f"shift must be 'down' or 'down_right', got {shift!r}")


class ShiftedConv2d(nn.Conv2d):
    """A convolution whose output at ``(i, j)`` sees inputs above (``"down"``) or above and left (``"down_right"``)
    of it, the current pixel included; ``stride=2`` halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, shift: Shift = "down",
                 kernel: tuple[int, int] | None = None, stride: int = 1):
        kernel = tuple(kernel or DEFAULT_KERNELS[shift])
        super().__init__(in_channels, out_channels, kernel, stride=stride)
        self.pad = _padding(shift, kernel)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pad))


class ShiftedConvTranspose2d(nn.ConvTranspose2d):
    """Upsampling by 2 that keeps a stream causal: output ``(i, j)`` reads the coarse position ``(i//2, ·)``
    (``"down"``, kernel 2x3) or exactly ``(i//2, j//2)`` (``"down_right"``, kernel 2x2), cropped to ``size``."""

    def __init__(self, in_channels: int, out_channels: int, shift: Shift = "down"):
        if shift not in ("down", "down_right"):
            raise ValueError(f"shift must be 'down' or 'down_right', got {shift!r}")
        super().__init__(in_channels, out_channels, DEFAULT_KERNELS[shift], stride=2)
        self.left_crop = (DEFAULT_KERNELS[shift][1] - 1) // 2

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        height, width = size
        return super().forward(x)[:, :, :height, self.left_crop:self.left_crop + width]


def causal_conv2d(in_channels: int, out_channels: int, shift: Shift, kernel: tuple[int, int] | None = None,
                  stride: int = 1) -> nn.Module:
    """A shifted convolution, or a 1x1 ("network in network") convolution for ``shift="pointwise"``."""
    if shift == "pointwise":
        return nn.Conv2d(in_channels, out_channels, 1)
    return ShiftedConv2d(in_channels, out_channels, shift, kernel, stride)


class GatedResidualBlock(nn.Module):
    """``x + a ⊙ σ(b)`` with ``[a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux)))))``.

    ``shift`` chooses the two convolutions (``"down"``, ``"down_right"`` or ``"pointwise"``); ``aux_channels > 0``
    adds the auxiliary input ``aux`` (same resolution) through a 1x1 convolution. ``condition`` is a term added to
    the inner pre-activations (a class embedding or a projected vector, ``(N, channels, 1, 1)``, or a map of the
    block's resolution), as conditional PixelCNNs add ``V^T h``.
    """

    def __init__(self, channels: int, shift: Shift, aux_channels: int = 0, dropout: float = 0.0):
        super().__init__()
        self.inner = causal_conv2d(2 * channels, channels, shift)
        self.aux = nn.Conv2d(2 * aux_channels, channels, 1) if aux_channels else None
        self.dropout = nn.Dropout(dropout)
        self.gate = causal_conv2d(2 * channels, 2 * channels, shift)

    def forward(self, x: Tensor, aux: Tensor | None = None, condition: Tensor | float = 0.0) -> Tensor:
        if (aux is None) != (self.aux is None):
            raise ValueError("pass aux exactly when the block was built with aux_channels > 0")
        hidden = self.inner(concat_elu(x)) + condition
        if aux is not None:
            hidden = hidden + self.aux(concat_elu(aux))
        value, gate = self.gate(self.dropout(concat_elu(hidden))).chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


class CausalAttention(nn.Module):
    """Multi-head dot-product attention over positions in raster order, each query seeing earlier keys only.

    ``query_input (N, Cq, *S)`` and ``key_input (N, Ck, *S)`` (keys and values are both computed from it) share the
    positions ``S`` (an image ``(H, W)`` or a sequence ``(T,)``); the result is ``(N, value_channels, *S)``.
    """

    def __init__(self, query_channels: int, key_channels: int, key_dim: int, value_channels: int, heads: int = 1):
        super().__init__()
        if key_dim % heads or value_channels % heads:
            raise ValueError(f"key_dim ({key_dim}) and value_channels ({value_channels}) must be multiples of "
                             f"heads ({heads})")
        self.heads = heads
        self.query = nn.Linear(query_channels, key_dim)
        self.key = nn.Linear(key_channels, key_dim)
        self.value = nn.Linear(key_channels, value_channels)

    def forward(self, query_input: Tensor, key_input: Tensor) -> Tensor:
        n, _, *positions = query_input.shape
        query_positions, key_positions = query_input.flatten(2).transpose(1, 2), key_input.flatten(2).transpose(1, 2)
        queries = split_heads(self.query(query_positions), self.heads)
        keys = split_heads(self.key(key_positions), self.heads)
        values = split_heads(self.value(key_positions), self.heads)
        # key and value j move to slot j + 1 behind a null slot (key 0, value 0): a causal mask over the slots lets
        # query i see the null slot and keys j < i, and the fused kernel of PyTorch applies that mask
        keys, values = shift_down(keys), shift_down(values)  # (N, heads, L, D): one step along L
        attended = dot_product_attention(queries, keys, values, causal=True)
        return merge_heads(attended).transpose(1, 2).reshape(n, -1, *positions)


class CausalConv1d(nn.Conv1d):
    """A dilated convolution over time whose output at ``t`` sees inputs ``t - (k-1)d, …, t - d, t`` only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.history = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        """Outputs at every step of ``x`` ``(N, C, T)``, shape ``(N, out_channels, T)``."""
        return super().forward(F.pad(x, (self.history, 0)))

    def step(self, window: Tensor) -> Tensor:
        """The output at the last step of ``window`` ``(N, C, history + 1)``, shape ``(N, out_channels, 1)``."""
        return super().forward(window)
