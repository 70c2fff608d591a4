"""Progressive GAN (Karras, Aila, Laine & Lehtinen, 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation", ICLR): the generator and the critic start at a small resolution and grow, one
resolution at a time, to the image size (§2, Figure 2), trained with any loss and trick of
:class:`~dgm.models.adversarial.base.GANModel`.

Resolutions: the image size halved while it stays even and at least ``SMALLEST_MAP`` (4) pixels, smallest first:
28x28 → 7, 14, 28; 32x32 → 4, 8, 16, 32; 4x4 → 4 alone.

Schedule (§2; §A.1 shows 800k images per phase): the first stage trains for ``stable_steps`` batches; each later
stage is faded in over ``fade_steps`` batches, α rising linearly from 0 to 1, then trains stable (α = 1) for
``stable_steps`` batches; the last stage then stays. Stage and α are a function of the batch index ``step`` that the
trainer gives :meth:`PGGAN.training_step`, so a resumed run continues exactly. Each network keeps the step it has
reached in a buffer (saved with the weights), from which every call reads its stage and α: a saved and loaded model
samples and is evaluated at the stage its training reached, and its samples of an earlier stage are upsampled
(nearest neighbour) to the image size.

Fading in (Figure 2), with ``upsample`` nearest neighbour and ``downsample`` 2x2 average pooling:

- G: ``(1 − α) · upsample(toRGB_{k−1}(h)) + α · toRGB_k(block_k(h))``, ``h`` the features of stage ``k − 1``;
- D: ``(1 − α) · fromRGB_{k−1}(downsample(x)) + α · block_k(fromRGB_k(x))``, then the blocks of the earlier
  stages;
- the real images (Figure 2's caption, "we interpolate between two resolutions of the real images"): average-pooled
  to the current resolution ``x_k``, then ``(1 − α) · upsample(downsample(x_k)) + α · x_k``, like G's output.

Networks (Table 2, with fewer blocks for a smaller image as §A.2 does): LeakyReLU(0.2) after every layer but the
outputs, an equalized learning rate in every layer (§4.1), pixel norm after every convolution of G and on its input
``z`` (§4.2), the minibatch standard deviation before the critic's last convolution (§3); ``width`` channels at the
image size, twice as many at each halving (DCGAN's rule). Each stage's image is ``tanh`` of its toRGB (the images of
every dgm GAN lie in ``[−1, 1]``; the paper's output is linear). With ``n_classes`` the one-hot class joins ``z``
(the authors' code) and the critic's output is a projection (:class:`~dgm.nn.class_conditioning.ProjectionHead`).

Defaults (§A.1): the WGAN-GP loss (λ = 10) with the drift term ``ε_drift E[D(x)²]``, ``ε_drift = 0.001``, one
critic update per generator update, Adam with ``β = (0, 0.99)`` at the trainer's learning rate (``lr=1e-3``, the
paper's). Phases of 2000 batches (128 000 images at batch 64, against the paper's 800 000) fit a course's MNIST
run: all three stages are grown after 10 000 batches.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import Losses, Update, check_integer, check_levels
from dgm.models.adversarial.base import GANModel, check_non_negative, check_image_shape
from dgm.models.adversarial.networks import SMALLEST_MAP
from dgm.nn.class_conditioning import ProjectionHead
from dgm.nn.gan_blocks import upsample
from dgm.nn.progressive import MinibatchStddev, PixelNorm, equalized
from dgm.registry import register_model


def growth_resolutions(height: int, width: int) -> list[tuple[int, int]]:
    """The resolutions the networks grow through, smallest first (see the module docstring)."""
    sizes = [(height, width)]
    while all(size % 2 == 0 and size // 2 >= SMALLEST_MAP for size in sizes[-1]):
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes[::-1]


def downsample(x: Tensor, factor: int = 2) -> Tensor:
    """``factor`` times smaller, by averaging ``factor x factor`` pixels."""
    return F.avg_pool2d(x, factor)


@dataclass(frozen=True)
class GrowthSchedule:
    """Which stage trains at training batch ``step``, and how far its fade has come (§2; the module docstring)."""

    stages: int
    fade_steps: int
    stable_steps: int

    def at(self, step: int) -> tuple[int, float]:
        """``(stage, α)``: α rises linearly from 0 at the start of a stage's fade towards 1, and is 1 while the
        stage is stable."""
        after_first = step - self.stable_steps
        if after_first < 0:
            return 0, 1.0
        later, into = divmod(after_first, self.fade_steps + self.stable_steps)
        if later + 1 >= self.stages:
            return self.stages - 1, 1.0
        return later + 1, min(into / self.fade_steps, 1.0)


class Growing(nn.Module):
    """A network that grows on a schedule: ``step`` (a buffer, saved with the weights) is the training batch it has
    reached, from which each call reads its stage and α."""

    def __init__(self, schedule: GrowthSchedule):
        super().__init__()
        self.schedule = schedule
        self.register_buffer("step", torch.tensor(0))

    def growth(self) -> tuple[int, float]:
        """``(stage, α)`` at the step reached."""
        return self.schedule.at(int(self.step))


def convolution(channels_in: int, channels_out: int, kernel: int, pixel_norm: bool = False) -> list[nn.Module]:
    """An equalized convolution that keeps the size (§4.1), LeakyReLU(0.2), and pixel norm where asked (§4.2)."""
    layers = [equalized(nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2)), nn.LeakyReLU(0.2)]
    return layers + ([PixelNorm()] if pixel_norm else [])


class ProgressiveGenerator(Growing):
    """G of Figure 2: ``z`` (pixel-normalised, with the one-hot class beside it) → a dense layer to ``channels[0]``
    maps of the smallest resolution and a 3x3 convolution (block 0); block ``k`` doubles the resolution and applies
    two 3x3 convolutions; ``to_image[k]`` (toRGB, 1x1, then tanh) gives the image of stage ``k``. Returns the image
    of the current stage, during a fade blended with the upsampled image of the previous one."""

    def __init__(self, schedule: GrowthSchedule, resolutions: list[tuple[int, int]], channels: list[int],
                 image_channels: int, latent_dim: int, n_classes: int | None):
        super().__init__(schedule)
        self.n_classes = n_classes
        first = channels[0]
        start = [equalized(nn.Linear(latent_dim + (n_classes or 0), first * math.prod(resolutions[0]))),
                 nn.Unflatten(1, (first, *resolutions[0])), nn.LeakyReLU(0.2), PixelNorm(),
                 *convolution(first, first, 3, pixel_norm=True)]
        self.normalise = PixelNorm()
        self.blocks = nn.ModuleList([nn.Sequential(*start)] + [
            nn.Sequential(nn.Upsample(scale_factor=2), *convolution(a, b, 3, pixel_norm=True),
                          *convolution(b, b, 3, pixel_norm=True)) for a, b in zip(channels[:-1], channels[1:])])
        self.to_image = nn.ModuleList(nn.Sequential(equalized(nn.Conv2d(c, image_channels, 1), gain=1), nn.Tanh())
                                      for c in channels)

    def latent(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """``z`` pixel-normalised (§4.2, the authors' ``normalize_latents``), the one-hot class beside it."""
        z = self.normalise(z)
        return z if labels is None else torch.cat([z, F.one_hot(labels, self.n_classes).to(z.dtype)], 1)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        stage, alpha = self.growth()
        h = self.latent(z, labels)
        for block in self.blocks[:stage]:
            h = block(h)
        new = self.to_image[stage](self.blocks[stage](h))
        if alpha == 1:
            return new
        return torch.lerp(upsample(self.to_image[stage - 1](h)), new, alpha)


class ProgressiveCritic(Growing):
    """D of Figure 2, G's mirror: ``from_image[k]`` (fromRGB, 1x1) reads an image of stage ``k``; block ``k`` applies
    two 3x3 convolutions and halves the resolution; block 0 appends the minibatch standard deviation (§3) and
    applies a 3x3 convolution and a dense layer; the output is linear (a projection with classes). During a fade the
    new block's features are blended with those of the previous fromRGB on the downsampled image."""

    def __init__(self, schedule: GrowthSchedule, resolutions: list[tuple[int, int]], channels: list[int],
                 image_channels: int, n_classes: int | None):
        super().__init__(schedule)
        first = channels[0]
        self.from_image = nn.ModuleList(nn.Sequential(*convolution(image_channels, c, 1)) for c in channels)
        last = [MinibatchStddev(), *convolution(first + 1, first, 3), nn.Flatten(),
                equalized(nn.Linear(first * math.prod(resolutions[0]), first)), nn.LeakyReLU(0.2)]
        self.blocks = nn.ModuleList([nn.Sequential(*last)] + [
            nn.Sequential(*convolution(b, b, 3), *convolution(b, a, 3), nn.AvgPool2d(2))
            for a, b in zip(channels[:-1], channels[1:])])
        self.head = ProjectionHead(first, n_classes)
        self.head.linear = equalized(nn.Linear(first, 1), gain=1)  # the output layer's learning rate equalized too

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        stage, alpha = self.growth()
        h = self.blocks[stage](self.from_image[stage](x))
        if alpha < 1:
            h = torch.lerp(self.from_image[stage - 1](downsample(x)), h, alpha)
        for block in reversed(self.blocks[:stage]):
            h = block(h)
        return self.head(h, labels)


@register_model("pggan", "Progressive GAN (Karras et al. 2018) for images: G and D grow 7→14→28 with faded-in "
                         "layers; pixel norm, minibatch stddev, equalized lr; WGAN-GP with drift")
class PGGAN(GANModel):
    def __init__(self, shape: tuple[int, ...], levels: int = 256, latent_dim: int = 128, width: int = 32,
                 fade_steps: int = 2000, stable_steps: int = 2000, drift: float = 0.001, loss: str = "wasserstein",
                 critic_steps: int = 1, gradient_penalty: float = 10.0, r1: float = 0.0,
                 clip_weights: float | None = None, spectral_norm: bool = False, label_smoothing: float = 0.0,
                 generator_lr: float | None = None, critic_lr: float | None = None,
                 betas: tuple[float, float] = (0.0, 0.99), n_classes: int | None = None,
                 calibration_steps: int = 0):
        shape = check_image_shape(shape, "pggan")
        super().__init__(shape, check_levels(levels, "pggan"), latent_dim, loss, critic_steps, gradient_penalty,
                         r1, clip_weights, spectral_norm, label_smoothing, generator_lr, critic_lr, betas,
                         n_classes, calibration_steps)
        check_integer(width, "width", 1)
        self.drift = check_non_negative(drift, "drift")
        self.resolutions = growth_resolutions(*shape[1:])
        stages = len(self.resolutions)
        schedule = GrowthSchedule(stages, check_integer(fade_steps, "fade_steps", 1),
                                  check_integer(stable_steps, "stable_steps", 0))
        channels = [width * 2 ** (stages - 1 - k) for k in range(stages)]
        self.generator = ProgressiveGenerator(schedule, self.resolutions, channels, shape[0], latent_dim,
                                              self.n_classes)
        self.critic = ProgressiveCritic(schedule, self.resolutions, channels, shape[0], self.n_classes)
        self.finish_critic()

    # -- growing ------------------------------------------------------------------------------------------------
    @property
    def reached_step(self) -> int:
        """The training batch the networks have reached (what decides their stage and α)."""
        return int(self.generator.step)

    def growth(self) -> tuple[int, float]:
        """``(stage, α)`` of the networks now."""
        return self.generator.growth()

    def reach(self, step: int) -> None:
        """Move both networks to training batch ``step`` of the schedule."""
        for network in (self.generator, self.critic):
            network.step.fill_(step)

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """GANModel's critic and generator updates, at the stage and α of batch ``step``."""
        self.reach(step)
        yield from super().training_step(x, step, **condition)

    # -- between data and networks ------------------------------------------------------------------------------
    def to_network(self, x: Tensor) -> Tensor:
        """Real images as the critic reads them now (Figure 2's caption): on ``[−1, 1]``, average-pooled to the
        current resolution and, during a fade, blended between it and the previous one as G's output is."""
        stage, alpha = self.growth()
        real = downsample(super().to_network(x), 2 ** (len(self.resolutions) - 1 - stage))
        if alpha == 1:
            return real
        return torch.lerp(upsample(downsample(real)), real, alpha)

    def to_data(self, y: Tensor) -> Tensor:
        """Generated images upsampled (nearest neighbour) to the image size, then as every GAN's."""
        return super().to_data(F.interpolate(y, size=self.shape[1:], mode="nearest"))

    # -- the objectives -----------------------------------------------------------------------------------------
    def critic_outputs(self, real: Tensor, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """The critic on the real and on the generated batch in two calls: the minibatch standard deviation (§3) is
        a statistic of one batch, never of real and generated examples together."""
        return self.critic(real, labels), self.critic(fake, labels)

    def _critic_terms(self, on_real: Tensor, on_fake: Tensor) -> Losses:
        """GANModel's critic loss plus the drift term ``ε_drift E[D(x)²]`` on real data (§A.1), which keeps the
        critic's outputs near zero; logged as ``drift``. It is added where the critic loss is formed, for training
        and evaluation alike, from the outputs the loss already has."""
        losses = super()._critic_terms(on_real, on_fake)
        drift = self.drift * on_real.square().mean()
        return losses | {"loss": losses["loss"] + drift, "drift": drift.detach()}
