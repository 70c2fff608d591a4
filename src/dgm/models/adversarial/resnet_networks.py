"""ResNet generator and critic of SN-GAN (Miyato, Kataoka, Koyama & Yoshida, 2018, appendix B, Table 4: CIFAR-10)
and SAGAN (Zhang, Goodfellow, Metaxas & Odena, 2019), built of the residual blocks of :mod:`dgm.nn.gan_blocks`.

Generator: ``z`` → a linear map to ``width`` channels at ``s × s`` → ``stages`` residual blocks, each doubling the
size → batch normalisation, ReLU, a 3x3 convolution to the image's channels and ``tanh``, cropped to the image
size. ``s`` and ``stages`` are DCGAN's (:func:`~dgm.models.adversarial.networks.upsampling_stages`; 28x28:
7 → 14 → 28; 32x32: 4 → 8 → 16 → 32, Table 4). Every batch normalisation is class-conditional given ``n_classes``.

Critic: residual blocks of ``width`` channels, ``stages − 1`` that halve the resolution, then two that keep it
(Table 4 at 32x32: 32 → 16 → 8, 8, 8; at 28x28: 28 → 14, 14, 14; the first reads the image) → ReLU → the sum
over positions (global sum pooling) → a linear output, or with classes the projection output of Miyato & Koyama
(2018) (:class:`~dgm.nn.class_conditioning.ProjectionHead`). No batch normalisation, as spectral normalisation and
the gradient penalty assume.

With ``attention_resolution = r``, a :class:`~dgm.nn.gan_blocks.GatedSelfAttention` follows the generator's feature
map of resolution ``r`` and the critic's first block whose output has resolution ``r`` (SAGAN; the resolution of a
map is its height, its size for square images). :func:`attention_resolutions` lists the ``r`` both networks have.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from dgm.models.adversarial.networks import upsampling_stages
from dgm.nn.class_conditioning import ConditionalBatchNorm2d, ProjectionHead
from dgm.nn.gan_blocks import CriticResidualBlock, GatedSelfAttention, GeneratorResidualBlock


def generator_resolutions(shape: tuple[int, int, int]) -> list[int]:
    """The heights of the generator's feature maps, from the linear map's on: (1, 28, 28) → [7, 14, 28]."""
    stages = upsampling_stages(min(shape[1:]))
    start = math.ceil(shape[1] / 2 ** stages)
    return [start * 2 ** stage for stage in range(stages + 1)]


def critic_downsamples(shape: tuple[int, int, int]) -> list[bool]:
    """Whether each critic block halves the resolution: ``stages − 1`` that do, then two that do not."""
    return [True] * (upsampling_stages(min(shape[1:])) - 1) + [False, False]


def critic_resolutions(shape: tuple[int, int, int]) -> list[int]:
    """The heights of the critic blocks' outputs: (3, 32, 32) → [16, 8, 8, 8]."""
    heights, height = [], shape[1]
    for downsample in critic_downsamples(shape):
        height = height // 2 if downsample else height
        heights.append(height)
    return heights


def attention_resolutions(shape: tuple[int, int, int]) -> list[int]:
    """The resolutions at which both networks can attend, smallest first: (1, 28, 28) → [14]."""
    return sorted(set(generator_resolutions(shape)) & set(critic_resolutions(shape)))


class ResNetGenerator(nn.Module):
    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int, n_classes: int | None,
                 attention_resolution: int | None = None):
        super().__init__()
        self.shape = shape
        resolutions = generator_resolutions(shape)
        stages = len(resolutions) - 1
        self.start = (math.ceil(shape[1] / 2 ** stages), math.ceil(shape[2] / 2 ** stages))
        self.project = nn.Linear(latent_dim, width * math.prod(self.start))
        self.blocks = nn.ModuleList(GeneratorResidualBlock(width, width, n_classes) for _ in range(stages))
        self.norm = ConditionalBatchNorm2d(width, n_classes)
        self.out = nn.Conv2d(width, shape[0], 3, padding=1)
        self.attention_stage = None if attention_resolution is None else resolutions.index(attention_resolution)
        self.attention = None if attention_resolution is None else GatedSelfAttention(width)

    def attend(self, h: Tensor, stage: int) -> Tensor:
        """The feature map of ``stage`` (0: the linear map's), through the attention block where it sits."""
        return self.attention(h) if stage == self.attention_stage else h

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.project(z).view(len(z), -1, *self.start)
        for stage, block in enumerate(self.blocks):
            h = block(self.attend(h, stage), labels)
        h = self.norm(self.attend(h, len(self.blocks)), labels).relu()
        return self.out(h)[:, :, :self.shape[1], :self.shape[2]].tanh()


class ResNetCritic(nn.Module):
    def __init__(self, shape: tuple[int, int, int], width: int, n_classes: int | None,
                 attention_resolution: int | None = None):
        super().__init__()
        blocks: list[nn.Module] = [CriticResidualBlock(shape[0] if index == 0 else width, width, downsample,
                                                       first=index == 0)
                                   for index, downsample in enumerate(critic_downsamples(shape))]
        if attention_resolution is not None:
            blocks.insert(critic_resolutions(shape).index(attention_resolution) + 1, GatedSelfAttention(width))
        self.blocks = nn.Sequential(*blocks)
        self.head = ProjectionHead(width, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """``φ(x)``: the blocks' output after a ReLU, summed over positions, ``(N, width)``."""
        return self.blocks(x).relu().sum(dim=(2, 3))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.head(self.features(x), labels)
