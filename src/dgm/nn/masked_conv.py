"""Masked convolutions of PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, 2016a, §3.4 and Figure 2).

A masked convolution computes output pixel ``(i, j)`` only from input pixels that come before ``(i, j)`` in raster
order: the rows above, and the pixels to the left in the same row. At the centre ``(i, j)`` itself the colour
channels are ordered R, then G, then B: the feature maps are split into ``image_channels`` groups, channel ``k`` of a
layer belonging to group ``k mod image_channels`` (interleaved, so that any block of a multiple of
``image_channels`` consecutive channels — a gate's two halves, a residual branch — holds every group alike).

- **Type A** (the first layer, which sees the image): at the centre, group ``g`` of the output sees input groups
  ``< g`` only, so the prediction of a value never sees the value.
- **Type B** (every later layer): at the centre, group ``g`` sees input groups ``≤ g``.

For a grey or binary image (``image_channels=1``) type A drops the centre and type B keeps it, the homework's mask
test. The rows of the kernel below the centre are masked entirely, so they are not stored: a ``k x k`` masked
convolution holds a ``(k//2 + 1) x k`` kernel and costs about half of a full one. The kernel need not be square and
its centre need not be its middle: Gated PixelCNN's horizontal stack uses a ``1 x (k//2 + 1)`` kernel whose centre is
its last column (:mod:`dgm.nn.gated`).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer

MaskType = Literal["A", "B"]


def causal_mask(in_channels: int, out_channels: int, kernel_size: tuple[int, int], centre: tuple[int, int],
                mask_type: MaskType, image_channels: int = 1) -> Tensor:
    """The ``(out, in, kh, kw)`` 0/1 mask: raster-order predecessors of ``centre``, and at the centre the colour
    groups allowed by ``mask_type``."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    rows = torch.arange(kernel_size[0]).view(-1, 1)
    cols = torch.arange(kernel_size[1]).view(1, -1)
    before = (rows < centre[0]) | ((rows == centre[0]) & (cols < centre[1]))
    mask = before.expand(out_channels, in_channels, *kernel_size).clone()
    out_group = torch.arange(out_channels).view(-1, 1) % image_channels
    in_group = torch.arange(in_channels).view(1, -1) % image_channels
    mask[:, :, centre[0], centre[1]] = out_group > in_group if mask_type == "A" else out_group >= in_group
    return mask.float()


class MaskedConv2d(nn.Conv2d):
    """A ``kernel_size`` convolution whose weight is multiplied by :func:`causal_mask` (a buffer ``mask``), padded so
    that output ``(i, j)`` sits at the input position of the kernel's ``centre`` (the middle of the kernel by
    default) and the output has the input's height and width. The weight and the mask keep only the kernel's rows
    down to the centre's (the rows below are masked entirely).

    ``window(x)`` convolves an input that is already cut or padded to the kernel's reach (no padding added): the
    cached sampler of Gated PixelCNN evaluates one position with it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], mask_type: MaskType,
                 image_channels: int = 1, centre: tuple[int, int] | None = None, bias: bool = True):
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        centre = (kernel[0] // 2, kernel[1] // 2) if centre is None else tuple(centre)
        if not (0 <= centre[0] < kernel[0] and 0 <= centre[1] < kernel[1]):
            raise ValueError(f"the centre {centre} must lie inside the kernel {kernel}")
        stored = (centre[0] + 1, kernel[1])
        super().__init__(in_channels, out_channels, stored, bias=bias)
        check_integer(image_channels, "image_channels", 1)
        self.mask_type, self.centre = mask_type, centre
        self.padding_sides = (centre[1], kernel[1] - 1 - centre[1], centre[0], 0)
        self.register_buffer("mask", causal_mask(in_channels, out_channels, stored, centre, mask_type,
                                                 image_channels))

    def window(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.window(F.pad(x, self.padding_sides))


class CausalLayerNorm(nn.Module):
    """Layer normalisation over the channels at each pixel (the homework's ``LayerNorm``), taken separately within
    each colour group of :class:`MaskedConv2d`: statistics over all channels would carry a later colour's value into
    an earlier colour's features. With one image channel it is the ordinary layer norm over channels."""

    def __init__(self, channels: int, image_channels: int = 1, eps: float = 1e-5):
        super().__init__()
        if channels % image_channels:
            raise ValueError(f"the number of channels ({channels}) must be a multiple of the image channels "
                             f"({image_channels})")
        self.image_channels, self.eps = image_channels, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(N, channels, H, W)``: channel ``k`` is member ``k // image_channels`` of group
        ``k mod image_channels``; each group is normalised over its members."""
        n, channels, height, width = x.shape
        groups = self.image_channels
        members = x.permute(0, 2, 3, 1).reshape(n, height, width, channels // groups, groups).transpose(-1, -2)
        normalised = F.layer_norm(members, (channels // groups,), eps=self.eps)
        normalised = normalised.transpose(-1, -2).reshape(n, height, width, channels).permute(0, 3, 1, 2)
        return normalised * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
