"""Convolutional networks of the image GANs: DCGAN's generator and critic (Radford, Metz & Chintala, 2016, §3), in
the shapes of the course's ``ConvGenerator`` and ``ConvCritic`` (homework 5, task 3; homework 6, task 2).

Generator: ``z`` → a linear map to ``2^(stages−1) · width`` channels at ``s × s`` with batch normalisation
(class-conditional for ``n_classes``, :class:`~dgm.nn.class_conditioning.ConditionalBatchNorm2d`) and ReLU →
``stages − 1`` blocks of a stride-2 transposed convolution (kernel 4) halving the channels and doubling the size,
each with batch normalisation and ReLU → a last stride-2 transposed convolution to the image's channels and
``tanh``. ``s`` is the image size over ``2^stages``, rounded up (28x28: 7 → 14 → 28; 32x32: 4 → 8 → 16 → 32), and
the output is cropped to the image size. ``stages`` is the number of doublings that keeps ``s ≥ 4``.

Critic: ``stages`` stride-2 convolutions (kernel 4) from ``width`` channels on, doubling the channels, each followed
by LeakyReLU(0.2) (28x28: 14x14 of ``width``, 7x7 of ``2·width``), then a linear output on the flattened features.
No layer works at the image's full resolution (the DCGAN of the PyTorch examples; the course's ``ConvCritic`` is
such a stack of stride-2 convolutions). It has no batch
normalisation, so that the gradient penalty and spectral normalisation apply to it as their papers assume
(Gulrajani et al., 2017, §4: "no critic batch normalization"). With classes the output is a projection
(:class:`~dgm.nn.class_conditioning.ProjectionHead`).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from dgm.nn.class_conditioning import ConditionalBatchNorm2d, ProjectionHead

SMALLEST_MAP = 4  # the generator starts from feature maps at least this large


def upsampling_stages(size: int) -> int:
    """The number of doublings from a map of at least ``SMALLEST_MAP`` pixels to ``size``: 28 → 2, 32 → 3."""
    return max(0, int(math.floor(math.log2(size / SMALLEST_MAP))))


class UpBlock(nn.Module):
    """Stride-2 transposed convolution (kernel 4), (class-conditional) batch norm, ReLU."""

    def __init__(self, channels_in: int, channels_out: int, n_classes: int | None):
        super().__init__()
        self.conv = nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, bias=False)
        self.norm = ConditionalBatchNorm2d(channels_out, n_classes)

    def forward(self, h: Tensor, labels: Tensor | None) -> Tensor:
        return self.norm(self.conv(h), labels).relu()


def output_layer(channels_in: int, channels_out: int, stages: int) -> nn.Module:
    """The layer that gives the image's channels: the last stride-2 transposed convolution (kernel 4), or for an
    image too small for any (``stages = 0``) a 3x3 convolution."""
    if stages == 0:
        return nn.Conv2d(channels_in, channels_out, 3, padding=1)
    return nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1)


class DCGANGenerator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int, n_classes: int | None):
        super().__init__()
        channels, height, image_width = shape
        stages = upsampling_stages(min(height, image_width))
        self.shape = shape
        self.start = (math.ceil(height / 2 ** stages), math.ceil(image_width / 2 ** stages))
        widths = [width * 2 ** (stages - 1 - i) for i in range(stages)] or [width]
        self.project = nn.Linear(latent_dim, widths[0] * math.prod(self.start), bias=False)
        self.project_norm = ConditionalBatchNorm2d(widths[0], n_classes)
        self.blocks = nn.ModuleList(UpBlock(a, b, n_classes) for a, b in zip(widths[:-1], widths[1:]))
        self.out = output_layer(widths[-1], channels, stages)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.project(z).view(len(z), -1, *self.start)
        h = self.project_norm(h, labels).relu()
        for block in self.blocks:
            h = block(h, labels)
        return self.out(h)[:, :, :self.shape[1], :self.shape[2]].tanh()


class DCGANCritic(nn.Module):
    def __init__(self, shape: tuple[int, int, int], width: int, n_classes: int | None):
        super().__init__()
        channels, height, image_width = shape
        stages = upsampling_stages(min(height, image_width))
        widths = [channels] + ([width * 2 ** i for i in range(stages)] or [width])
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            conv = nn.Conv2d(a, b, 4, stride=2, padding=1) if stages else nn.Conv2d(a, b, 3, padding=1)
            layers += [conv, nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        size = math.ceil(height / 2 ** stages) * math.ceil(image_width / 2 ** stages)
        self.head = ProjectionHead(widths[-1] * size, n_classes)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.head(self.features(x), labels)
