"""Residual blocks of the ResNet GANs: the generator and critic blocks of Gulrajani, Ahmed, Arjovsky, Dumoulin &
Courville (2017, "Improved Training of Wasserstein GANs", appendix F) in the form of Miyato, Kataoka, Koyama &
Yoshida (2018, "Spectral Normalization for GANs", appendix B, Tables 4 and 5), and the attention block of SAGAN
(Zhang, Goodfellow, Metaxas & Odena, 2019, §3, eq. 3).

- :class:`GeneratorResidualBlock`, ``(N, C_in, H, W)`` → ``(N, C_out, 2H, 2W)``, with ``up`` the nearest-neighbour
  upsampling by 2 and ``BN_y`` batch normalisation, class-conditional given labels
  (:class:`~dgm.nn.class_conditioning.ConditionalBatchNorm2d`)::

      x ↦ conv₂(ReLU(BN_y(conv₁(up(ReLU(BN_y(x))))))) + W_s up(x)

- :class:`CriticResidualBlock`, ``(N, C_in, H, W)`` → ``(N, C_out, H/2, W/2)`` where it downsamples (else the same
  size), with ``pool`` the 2x2 average pooling where it downsamples (else nothing)::

      x ↦ pool(conv₂(ReLU(conv₁(ReLU(x))))) + W_s pool(x)

  The first block of a critic, which reads the image, has no leading ReLU (the "optimized block" of SN-GAN's code).

- :class:`GatedSelfAttention`: ``x + γ o(x)``, a learned multiple of the non-local response of
  :class:`~dgm.nn.attention.SelfAttention2d`.

Convolutions are 3x3 (zero padding 1); the shortcut ``W_s`` is a 1x1 convolution, the identity in a critic block
that keeps both size and channels. A 1x1 convolution commutes with nearest upsampling and with average pooling
(these repeat or average pixels, it maps each pixel's channels), so ``W_s`` is applied on the smaller map.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.attention import SelfAttention2d
from dgm.nn.class_conditioning import ConditionalBatchNorm2d

ATTENTION_GROUPS = 32  # the most groups of SelfAttention2d's group normalisation (its default)


def upsample(h: Tensor) -> Tensor:
    """Each pixel repeated in a 2x2 block: ``(N, C, H, W)`` → ``(N, C, 2H, 2W)``."""
    return F.interpolate(h, scale_factor=2, mode="nearest")


class GeneratorResidualBlock(nn.Module):
    """The generator's up-sampling residual block of the module docstring; ``n_classes`` makes both batch
    normalisations class-conditional (Miyato & Koyama, 2018, §3)."""

    def __init__(self, channels_in: int, channels_out: int, n_classes: int | None = None):
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(channels_in, n_classes)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(channels_out, n_classes)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.shortcut = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, h: Tensor, labels: Tensor | None = None) -> Tensor:
        residual = self.conv1(upsample(self.norm1(h, labels).relu()))
        residual = self.conv2(self.norm2(residual, labels).relu())
        return upsample(self.shortcut(h)) + residual


class CriticResidualBlock(nn.Module):
    """The critic's residual block of the module docstring: halving the size where ``downsample``, without the
    leading ReLU where ``first``."""

    def __init__(self, channels_in: int, channels_out: int, downsample: bool, first: bool = False):
        super().__init__()
        self.first = first
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.pool = nn.AvgPool2d(2) if downsample else nn.Identity()
        keeps = channels_in == channels_out and not downsample
        self.shortcut = nn.Identity() if keeps else nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else x.relu()
        residual = self.pool(self.conv2(self.conv1(h).relu()))
        return self.shortcut(self.pool(x)) + residual


class GatedSelfAttention(nn.Module):
    """SAGAN's attention block (Zhang et al., 2019, §3, eq. 3): ``y = x + γ o``, where ``o`` is the non-local
    response ``SelfAttention2d(x) − x`` over all positions of ``(N, channels, H, W)`` and ``γ`` a learned scalar
    that starts at 0, so that the block starts as the identity.

    The output projection keeps PyTorch's initialisation instead of :class:`SelfAttention2d`'s zeros, which play the
    part of ``γ = 0`` there: SAGAN normalises every layer spectrally, and a zero matrix has no spectral norm to
    divide by (``0 / 0``). The group normalisation takes the most groups up to 32 that divide ``channels``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.attention = SelfAttention2d(channels, groups=math.gcd(channels, ATTENTION_GROUPS))
        self.attention.output.reset_parameters()
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.gain * (self.attention(x) - x)
