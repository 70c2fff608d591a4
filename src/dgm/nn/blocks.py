"""Convolutional blocks of image encoders, decoders, generators, critics and U-Nets (VAE, VQ-VAE, GANs, DDPM, NCSN).

- **Resampling by 2** (the U-Net of DDPM, Ho, Jain & Abbeel, 2020, appendix B, after PixelCNN++): :class:`Downsample`
  is a 3x3 convolution of stride 2; :class:`Upsample` repeats each pixel in a 2x2 block (nearest neighbour) and
  applies a 3x3 convolution, which avoids the checkerboard artefacts of transposed convolutions (Odena, Dumoulin &
  Olah, 2016, "Deconvolution and checkerboard artifacts").
- **Residual block** with an optional embedding input (DDPM appendix B, Wide ResNet blocks of Zagoruyko & Komodakis,
  2016, in the pre-activation order of He, Zhang, Ren & Sun, 2016, "Identity mappings in deep residual networks"):

      h = conv₁(SiLU(GroupNorm(x))) + W_e · SiLU(e),      x + conv₂(dropout(SiLU(GroupNorm(h)))),

  where ``e`` is a time embedding (:mod:`dgm.nn.embedding`) or any condition vector, added to every pixel of each
  channel, and the shortcut ``x`` passes through a 1x1 convolution where the block changes the number of channels.
  ``conv₂`` starts at zero (DDPM's ``init_scale=0``), so the block starts as its shortcut: the identity when the
  channels stay.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """Group normalisation (Wu & He, 2018) of ``channels`` channels in ``groups`` groups (DDPM: 32 groups)."""
    check_integer(groups, "groups", 1)
    if channels % groups:
        raise ValueError(f"group normalisation splits the {channels} channels into {groups} groups: channels must be "
                         f"a multiple of groups (pass groups=)")
    return nn.GroupNorm(groups, channels)


class Downsample(nn.Conv2d):
    """Halve the resolution: ``(N, channels_in, H, W)`` → ``(N, channels_out, ⌈H/2⌉, ⌈W/2⌉)`` by a 3x3 convolution of
    stride 2 (zero padding of 1), whose output ``(i, j)`` reads the 3x3 window centred on input ``(2i, 2j)``."""

    def __init__(self, channels_in: int, channels_out: int | None = None):
        super().__init__(channels_in, channels_in if channels_out is None else channels_out, 3, stride=2, padding=1)


class Upsample(nn.Module):
    """Double the resolution: ``(N, channels_in, H, W)`` → ``(N, channels_out, 2H, 2W)``, each pixel repeated in a
    2x2 block (nearest neighbour), then a 3x3 convolution (zero padding of 1)."""

    def __init__(self, channels_in: int, channels_out: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_in if channels_out is None else channels_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class PreActivationResidualBlock(nn.Module):
    """The residual block of the module docstring, ``(N, channels_in, H, W)`` → ``(N, channels_out, H, W)``, taking
    an embedding ``(N, embedding_dim)`` where ``embedding_dim`` is given; ``groups`` groups in each GroupNorm."""

    def __init__(self, channels_in: int, channels_out: int | None = None, embedding_dim: int | None = None,
                 dropout: float = 0.0, groups: int = 32):
        super().__init__()
        channels_out = channels_in if channels_out is None else channels_out
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.inner = nn.Sequential(group_norm(channels_in, groups), nn.SiLU(),
                                   nn.Conv2d(channels_in, channels_out, 3, padding=1))
        self.embedding = None if embedding_dim is None else nn.Sequential(nn.SiLU(),
                                                                          nn.Linear(embedding_dim, channels_out))
        last = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.outer = nn.Sequential(group_norm(channels_out, groups), nn.SiLU(), nn.Dropout(dropout), last)
        self.shortcut = nn.Identity() if channels_out == channels_in else nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        if (embedding is None) != (self.embedding is None):
            raise ValueError("pass embedding exactly when the block was built with embedding_dim")
        h = self.inner(x)
        if embedding is not None:
            h = h + self.embedding(embedding)[:, :, None, None]
        return self.shortcut(x) + self.outer(h)
