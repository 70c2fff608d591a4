"""StyleGAN for small images: the style-based generator of Karras, Laine & Aila (2019, "A Style-Based Generator
Architecture for Generative Adversarial Networks") with the modulated convolutions and skip outputs of StyleGAN2
(Karras et al., 2020, "Analyzing and Improving the Image Quality of StyleGAN", eqs. 1–3, Figure 7), trained with
any loss and trick of :class:`~dgm.models.adversarial.base.GANModel` against DCGAN's convolutional critic (with
the projection head for classes). The layers live in :mod:`dgm.nn.style`.

Generator. The mapping network turns ``z`` into ``w`` (§2, Figure 1b); with ``n_classes`` a learned class embedding
is concatenated to ``z`` first. The synthesis network starts from a learned constant at ``s × s`` (``s`` as in
DCGAN: 7 for 28x28, 4 for 32x32) and doubles the size up to the image's. Each resolution has two style blocks, as
in the paper, the first of which doubles the size (except at the start), and a ``ToImage`` whose output is added
to the bilinearly upsampled image of the resolution before (StyleGAN2's skip generator, Figure 7b). The sum is
cropped to the image size and passed through ``tanh``. Every style block reads its own ``w``: the synthesis network
takes ``(N, n_styles, w_dim)``, ``n_styles`` twice the number of resolutions (6 for 28x28, coarse to fine); a
resolution's ``ToImage`` reads the ``w`` of its second block. Channels: ``2^k · width`` at the ``k``-th resolution
from the last, as in DCGAN.

Style mixing (§3.1). In training, with probability ``style_mixing`` an image is generated from two latents:
``w1`` for the blocks before a crossover point drawn uniformly from 1 … n_styles − 1, ``w2`` from it on (drawn
for each image). Evaluation and sampling never mix; :meth:`StyleGAN.mix_styles` draws the grid of Figure 3.

Truncation in W (Appendix B; lecture 11): ``w' = w̄ + ψ (w − w̄)``, ``sample(n, psi=0.7)``, with ``w̄`` an
exponential moving average (decay 0.995) of the mapped ``w`` of training batches; unconditional, also for a
class-conditional model. BigGAN's truncation of ``z`` (``truncation=``, of the base class) stays available: it
acts before the mapping network and composes with ``psi``.

Defaults. StyleGAN's objective (Appendix C): the non-saturating loss with R1, γ = 10 at 1024x1024, Adam with
``betas=(0, 0.99)``. ``R1 = ½ E‖∇_x D(x)‖²`` sums over pixels, so γ is scaled with the number of pixels, as the
rule ``γ ∝ N²`` of StyleGAN2-ADA (Karras et al., 2020, "Training Generative Adversarial Networks with Limited
Data") does: 10 · (28 / 1024)² ≈ 0.0075, rounded to ``r1=0.01``, the γ that paper uses for CIFAR-10 (32x32).
``latent_dim = w_dim = 128`` (512 in the paper) and the paper's 8 mapping layers. The generator's weights have the
equalised learning rate (:mod:`dgm.nn.style`), so its Adam rate is the paper's 2e-3 in stored units, the mapping
network's ``mapping_lr_multiplier = 0.01`` of it; the critic is DCGAN's, without equalisation, and takes its own
``critic_lr``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgm.core import check_integer, check_levels
from dgm.models.adversarial.base import GANModel, check_image_shape
from dgm.models.adversarial.networks import DCGANCritic, upsampling_stages
from dgm.nn.style import MAPPING_LR_MULTIPLIER, MappingNetwork, StyleBlock, ToImage, upsample
from dgm.registry import register_model

STYLES_PER_RESOLUTION = 2  # style blocks at each resolution of the synthesis network, as in the paper
W_MEAN_DECAY = 0.995  # decay of the moving average w̄ of mapped latents (StyleGAN2's w_avg_beta)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SynthesisStage(nn.Module):
    """One resolution of the synthesis network: two style blocks (the first doubling the size where ``upsample``)
    and a ``ToImage``; ``stage(h, w, noise)`` with ``w`` ``(N, 2, w_dim)`` → features and this resolution's image."""

    def __init__(self, channels_in: int, channels_out: int, image_channels: int, w_dim: int, upsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList([StyleBlock(channels_in, channels_out, w_dim, upsample),
                                     StyleBlock(channels_out, channels_out, w_dim)])
        self.to_image = ToImage(channels_out, image_channels, w_dim)

    def forward(self, h: Tensor, w: Tensor, noise: bool) -> tuple[Tensor, Tensor]:
        for i, block in enumerate(self.blocks):
            h = block(h, w[:, i], noise)
        return h, self.to_image(h, w[:, -1])


class StyleGenerator(nn.Module):
    """Mapping network and skip synthesis network (see the module docstring); ``generator(z, labels)`` generates
    with one ``w`` for every block, :meth:`synthesis` from a ``w`` per block. ``w_mean`` holds ``w̄``."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int, w_dim: int, mapping_layers: int,
                 n_classes: int | None, mapping_lr_multiplier: float):
        super().__init__()
        self.shape = shape
        channels, height, image_width = shape
        stages = upsampling_stages(min(height, image_width))
        widths = [width * 2 ** (stages - i) for i in range(stages + 1)]
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_layers, n_classes, mapping_lr_multiplier)
        self.constant = nn.Parameter(torch.randn(widths[0], math.ceil(height / 2 ** stages),
                                                 math.ceil(image_width / 2 ** stages)))
        self.stages = nn.ModuleList(SynthesisStage(a, b, channels, w_dim, upsample=i > 0)
                                    for i, (a, b) in enumerate(zip(widths[:1] + widths[:-1], widths)))
        self.n_styles = STYLES_PER_RESOLUTION * len(self.stages)
        self.register_buffer("w_mean", torch.zeros(w_dim))

    def styles(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The mapped ``w`` of each latent, repeated for every block: ``(N, n_styles, w_dim)``."""
        return self.mapping(z, labels)[:, None].expand(-1, self.n_styles, -1)

    def synthesis(self, w: Tensor, noise: bool = True) -> Tensor:
        """Images in ``[−1, 1]`` from a ``w`` per block, ``(N, n_styles, w_dim)``; ``noise=False`` without noise."""
        stages = zip(self.stages, w.split(STYLES_PER_RESOLUTION, dim=1))
        first, w_first = next(stages)
        h, image = first(self.constant.expand(len(w), -1, -1, -1), w_first, noise)
        for stage, w_stage in stages:
            h, image_here = stage(h, w_stage, noise)
            image = upsample(image) + image_here
        return image[:, :, :self.shape[1], :self.shape[2]].tanh()

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.synthesis(self.styles(z, labels))


def mix_randomly(w1: Tensor, w2: Tensor, probability: float) -> Tensor:
    """Style mixing (StyleGAN, §3.1): each row takes, with ``probability``, the styles of ``w1`` before a crossover
    point drawn uniformly from 1 … n_styles − 1 and those of ``w2`` from it on; the other rows keep ``w1``."""
    n, n_styles = w1.shape[:2]
    mixed = torch.rand(n, device=w1.device) < probability
    crossover = torch.where(mixed, torch.randint(1, n_styles, (n,), device=w1.device), n_styles)
    first = torch.arange(n_styles, device=w1.device) < crossover[:, None]
    return torch.where(first[:, :, None], w1, w2)


@register_model("stylegan", "StyleGAN (Karras et al. 2019) for images: mapping network, StyleGAN2 modulated "
                            "convolutions, noise inputs, style mixing, truncation in W; conditional")
class StyleGAN(GANModel):
    def __init__(self, shape: tuple[int, ...], levels: int = 256, latent_dim: int = 128, width: int = 32,
                 w_dim: int = 128, mapping_layers: int = 8, mapping_lr_multiplier: float = MAPPING_LR_MULTIPLIER,
                 style_mixing: float = 0.9,
                 loss: str = "non_saturating", critic_steps: int = 1, gradient_penalty: float = 0.0,
                 r1: float = 0.01, clip_weights: float | None = None, spectral_norm: bool = False,
                 label_smoothing: float = 0.0, generator_lr: float | None = None, critic_lr: float | None = None,
                 betas: tuple[float, float] = (0.0, 0.99), n_classes: int | None = None,
                 calibration_steps: int = 0):
        shape = check_image_shape(shape, "stylegan")
        super().__init__(shape, check_levels(levels, "stylegan"), latent_dim, loss, critic_steps, gradient_penalty,
                         r1, clip_weights, spectral_norm, label_smoothing, generator_lr, critic_lr, betas,
                         n_classes, calibration_steps)
        if not (_is_number(style_mixing) and 0 <= style_mixing <= 1):
            raise ValueError(f"style_mixing is a probability in [0, 1], got {style_mixing!r}")
        self.style_mixing = float(style_mixing)
        if not (_is_number(mapping_lr_multiplier) and mapping_lr_multiplier > 0):
            raise ValueError(f"mapping_lr_multiplier must be a positive number (StyleGAN's 0.01), "
                             f"got {mapping_lr_multiplier!r}")
        self.generator = StyleGenerator(shape, latent_dim, check_integer(width, "width", 1),
                                        check_integer(w_dim, "w_dim", 1),
                                        check_integer(mapping_layers, "mapping_layers", 1), self.n_classes,
                                        float(mapping_lr_multiplier))
        self.critic = DCGANCritic(shape, width, self.n_classes)
        self.finish_critic()

    # -- styles -------------------------------------------------------------------------------------------------
    def styles(self, n: int, labels: Tensor | None) -> Tensor:
        """The ``w`` of each block, ``(N, n_styles, w_dim)``, for ``n`` fresh latents. In training ``w̄`` follows
        their mapped ``w`` (an exponential moving average) and rows are style-mixed with a second latent."""
        w = self.generator.styles(self.draw_latents(n), labels)
        if not self.training:
            return w
        with torch.no_grad():
            self.generator.w_mean.lerp_(w[:, 0].mean(dim=0).float(), 1 - W_MEAN_DECAY)
        return mix_randomly(w, self.generator.styles(self.draw_latents(n), labels), self.style_mixing)

    def truncate(self, w: Tensor, psi: float | None) -> Tensor:
        """The truncation trick in W (StyleGAN, Appendix B): ``w̄ + ψ (w − w̄)``; ``psi=None`` leaves ``w`` as it is."""
        if psi is None:
            return w
        if not _is_number(psi):
            raise ValueError(f"psi must be a number (0.7 in the course; 0 gives w̄, 1 no truncation), got {psi!r}")
        return torch.lerp(self.generator.w_mean.to(w.dtype), w, float(psi))

    def styles_of(self, z: Tensor, labels: Tensor | None, psi: float | None = None) -> Tensor:
        """The ``w`` of each block for given latents ``z`` ``(N, latent_dim)``, truncated by ``psi``: no mixing."""
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"latents must be a tensor of shape (N, {self.latent_dim}), got {got}")
        return self.truncate(self.generator.styles(z.to(self.device, self.dtype), self.labels_of(labels, len(z))),
                             psi)

    def generate(self, n: int, labels: Tensor | None) -> Tensor:
        return self.generator.synthesis(self.styles(n, labels))

    # -- generating ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, truncation: float | None = None,
               psi: float | None = None, noise: bool = True, rejection: bool = False) -> Tensor:
        """``n`` images; ``psi``: the truncation in W (0.7 in the course), ``truncation``: BigGAN's truncation of
        ``z`` (see :mod:`~dgm.models.adversarial.base`), ``noise=False``: the noise inputs left out, ``rejection``:
        discriminator rejection sampling (its ratio calibrated on untruncated samples with noise)."""
        def generate(k: int, given: Tensor | None) -> Tensor:
            return self.generator.synthesis(self.styles_of(self.draw_latents(k, truncation), given, psi), noise)
        return self.sample_from(generate, n, labels, rejection)

    @property
    def n_styles(self) -> int:
        """The number of style blocks, each reading its own ``w``."""
        return self.generator.n_styles

    @torch.no_grad()
    def mix_styles(self, z_rows: Tensor, z_columns: Tensor, crossover: int, labels_rows: Tensor | None = None,
                   labels_columns: Tensor | None = None, psi: float | None = None, noise: bool = True) -> Tensor:
        """The style-mixing grid of StyleGAN's Figure 3, ``(rows, columns, *shape)`` in data space: image ``(i, j)``
        takes the styles of the first ``crossover`` blocks from ``z_rows[i]`` and the rest from ``z_columns[j]``
        (coarse styles are the first, fine ones the last); ``crossover`` lies in ``0 … n_styles``."""
        crossover = check_integer(crossover, "crossover", 0)
        if crossover > self.generator.n_styles:
            raise ValueError(f"crossover must lie in 0..{self.generator.n_styles} (the number of style blocks), "
                             f"got {crossover}")
        rows, columns = self.styles_of(z_rows, labels_rows, psi), self.styles_of(z_columns, labels_columns, psi)
        w = torch.cat([rows[:, None, :crossover].expand(-1, len(columns), -1, -1),
                       columns[None, :, crossover:].expand(len(rows), -1, -1, -1)], dim=2)
        return self.to_data(self.generator.synthesis(w.flatten(0, 1), noise)).unflatten(0, w.shape[:2])
