"""The two causal streams of PixelCNN++ (Salimans, Karpathy, Chen & Kingma, 2017, §2.3–2.5), shared by PixelCNN++
and PixelSNAIL.

A *down* stream ``u`` sees every row above the current pixel; a *down-right* stream ``ul`` sees the pixels to its
left as well (and reads the down stream), so that together they cover all of ``x_<i`` without the blind spot of
masked convolutions. Each layer below takes and returns the pair ``(u, ul)``:

- :class:`FirstLayer` makes both streams from the input, shifted so that pixel ``i`` never sees itself;
- :class:`StreamBlock` applies one gated residual block (:class:`~dgm.nn.causal.GatedResidualBlock`) to each
  stream, with the shortcuts of the downsampling pass as auxiliary inputs in the upsampling pass (§2.4);
- :class:`StreamResample` halves or doubles both streams' resolution (§2.3) with causal strided or transposed
  convolutions.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dgm.nn.causal import GatedResidualBlock, ShiftedConv2d, ShiftedConvTranspose2d, shift_down, shift_right
from dgm.nn.conditioning import ConditionBias


class FirstLayer(nn.Module):
    """The two streams from the input, each shifted so that pixel ``i`` never sees itself: the down stream from
    the rows above, the down-right stream from the rows above and the pixels to the left."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.down = ShiftedConv2d(in_channels, filters, "down", (2, 3))
        self.row_above = ShiftedConv2d(in_channels, filters, "down", (1, 3))
        self.left = ShiftedConv2d(in_channels, filters, "down_right", (2, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return shift_down(self.down(x)), shift_down(self.row_above(x)) + shift_right(self.left(x))


class StreamBlock(nn.Module):
    """One gated residual block for each stream; the down-right stream also reads the down stream (and, in the
    upsampling pass, both streams read the shortcuts of the downsampling pass). Each block adds its own
    conditioning term (:class:`~dgm.nn.conditioning.ConditionBias`; ``0`` for an unconditional model)."""

    def __init__(self, filters: int, dropout: float, shortcut: bool, n_classes: int | None = None,
                 condition_shape: tuple | None = None):
        super().__init__()
        self.down = GatedResidualBlock(filters, "down", filters if shortcut else 0, dropout)
        self.down_right = GatedResidualBlock(filters, "down_right", (2 if shortcut else 1) * filters, dropout)
        self.down_condition = ConditionBias(filters, n_classes, condition_shape)
        self.down_right_condition = ConditionBias(filters, n_classes, condition_shape)

    def forward(self, u: Tensor, ul: Tensor, shortcuts: tuple[Tensor, Tensor] | None = None,
                labels: Tensor | None = None, condition: Tensor | None = None) -> tuple[Tensor, Tensor]:
        down_term = self.down_condition(labels, condition)
        down_right_term = self.down_right_condition(labels, condition)
        if shortcuts is None:
            u = self.down(u, condition=down_term)
            return u, self.down_right(ul, u, down_right_term)
        u = self.down(u, shortcuts[0], down_term)
        return u, self.down_right(ul, torch.cat([u, shortcuts[1]], dim=1), down_right_term)


class StreamResample(nn.Module):
    """Halve (``up=False``: strided convolutions) or double (transposed ones) the resolution of both streams."""

    def __init__(self, filters: int, up: bool):
        super().__init__()
        if up:
            self.down = ShiftedConvTranspose2d(filters, filters, "down")
            self.down_right = ShiftedConvTranspose2d(filters, filters, "down_right")
        else:
            self.down = ShiftedConv2d(filters, filters, "down", stride=2)
            self.down_right = ShiftedConv2d(filters, filters, "down_right", stride=2)

    def forward(self, u: Tensor, ul: Tensor, size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
        if size is None:
            return self.down(u), self.down_right(ul)
        return self.down(u, size), self.down_right(ul, size)
