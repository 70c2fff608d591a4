"""Couplings of images: RealNVP's masks and a convolutional conditioner (Dinh, Sohl-Dickstein & Bengio, 2017,
"Density estimation using Real NVP", §3.4).

A coupling keeps the elements where its mask is 1 and transforms the others given the kept ones. RealNVP uses two
spatial patterns on images ``(C, H, W)``:

- the **checkerboard** mask, 1 where the row plus column index is even (``parity=0``) or odd (``parity=1``), the same
  in every channel, so each transformed pixel is predicted from its four neighbours;
- the **channel-wise** mask, 1 on the first half of the channels (``parity=0``) or on the second half (``parity=1``),
  used after a squeeze, when the channels hold the four pixels of each 2x2 block.

Alternating the parity from one coupling to the next transforms every element. :func:`resnet_coupling` builds the
:class:`~dgm.flows.coupling.Coupling` of such a mask with a :func:`~dgm.nn.resnet.resnet` conditioner, optionally
conditioned on a context image of the same height and width (e.g. the image that a variational dequantizer
dequantizes, :mod:`dgm.flows.dequantization`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from dgm.flows.coupling import Coupling
from dgm.flows.transforms import ElementwiseTransform
from dgm.nn.resnet import resnet


def _check_image_shape(shape) -> tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"an image mask needs a shape (C, H, W) of positive integers, got {shape}")
    return shape


def _check_parity(parity) -> int:
    if parity not in (0, 1) or isinstance(parity, bool):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    return parity


def checkerboard_mask(shape, parity: int = 0) -> Tensor:
    """The ``(C, H, W)`` mask with ``b[c, i, j] = 1`` where ``i + j + parity`` is even."""
    channels, height, width = _check_image_shape(shape)
    _check_parity(parity)
    rows, columns = torch.arange(height).view(-1, 1), torch.arange(width).view(1, -1)
    board = ((rows + columns + parity) % 2 == 0).float()
    return board.expand(channels, height, width).clone()


def channel_mask(shape, parity: int = 0) -> Tensor:
    """The ``(C, H, W)`` mask that keeps the first ``C // 2`` channels (``parity=0``) or the last ``C - C // 2``
    (``parity=1``); ``C`` must be at least 2."""
    channels, height, width = _check_image_shape(shape)
    _check_parity(parity)
    if channels < 2:
        raise ValueError(f"a channel mask needs at least 2 channels, got shape {tuple(shape)}; squeeze first")
    first_half = (torch.arange(channels) < channels // 2).float()
    kept = first_half if parity == 0 else 1 - first_half
    return kept.view(-1, 1, 1).expand(channels, height, width).clone()


def resnet_coupling(mask: Tensor, transform: ElementwiseTransform, channels: int = 32, blocks: int = 2,
                    context_channels: int = 0) -> Coupling:
    """The coupling of images ``(N, *mask.shape)`` that transforms where ``mask`` is 0 by ``transform``, with
    parameters from a residual network (``channels`` wide, ``blocks`` blocks) whose last layer starts at zero.
    ``context_channels > 0`` makes it conditional on context images ``(N, context_channels, H, W)``, which the network
    sees as extra input channels beside the masked image."""
    in_channels = mask.shape[0]
    conditioner = resnet(in_channels + context_channels, transform.params_per_element * in_channels, channels, blocks)
    return Coupling(mask, conditioner, transform, context_channels)
