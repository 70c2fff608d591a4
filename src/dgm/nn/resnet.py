"""A small convolutional residual network, the conditioner of image couplings (the course's ``SimpleResnet``,
homework 3; He et al., 2016, "Deep residual learning", bottleneck blocks).

    3x3 conv → ReLU → blocks × [h + (1x1 conv → ReLU → 3x3 conv → ReLU → 1x1 conv)(h)] → ReLU → 3x3 conv

(with ``blocks = 0``: 3x3 conv → ReLU → 3x3 conv, the network of Glow's couplings without its middle 1x1 conv).

Every convolution keeps the spatial size. The last convolution starts at zero (``zero_last``), so a coupling
conditioned by the network starts as the identity map.
"""
from __future__ import annotations

from torch import Tensor, nn

from dgm.core import check_integer


class ResidualBlock(nn.Module):
    """``h + (1x1 conv → ReLU → 3x3 conv → ReLU → 1x1 conv)(h)`` with ``channels`` channels throughout."""

    def __init__(self, channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.residual(h)


def resnet(in_channels: int, out_channels: int, channels: int = 32, blocks: int = 2,
           zero_last: bool = True) -> nn.Sequential:
    """The network of the module docstring, ``(N, in_channels, H, W) → (N, out_channels, H, W)``."""
    for value, name, minimum in ((in_channels, "in_channels", 1), (out_channels, "out_channels", 1),
                                 (channels, "channels", 1), (blocks, "blocks", 0)):
        check_integer(value, name, minimum)
    last = nn.Conv2d(channels, out_channels, 3, padding=1)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    residual = [ResidualBlock(channels) for _ in range(blocks)] + ([nn.ReLU()] if blocks else [])
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(), *residual, last)
