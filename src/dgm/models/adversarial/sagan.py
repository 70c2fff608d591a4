"""SAGAN for images (Zhang, Goodfellow, Metaxas & Odena, 2019, "Self-Attention Generative Adversarial Networks"):
the ResNet generator and critic of SN-GAN (:mod:`dgm.models.adversarial.resnet_networks`) with a self-attention
block ``y = x + γ o`` (§3, eqs. 1–3; :class:`~dgm.nn.gan_blocks.GatedSelfAttention`) in both, after their feature
maps of resolution ``attention_resolution``, trained with any loss and trick of
:class:`~dgm.models.adversarial.base.GANModel`.

The defaults are the paper's (§4–5): spectral normalisation of every linear and convolutional layer of the critic
and of the generator too (§4.1), the two time-scale update rule with learning rates ``10⁻⁴`` for the generator and
``4·10⁻⁴`` for the critic and one critic update per generator update (§4.2), Adam ``(β1, β2) = (0, 0.9)`` and the
hinge loss (eq. 4). The attention sits by default at the largest resolution that both networks have (14 for 28x28
images, 16 for 32x32), where §5.1 found it helped most. ``width`` is the critic's channels; the generator has twice
as many.
"""
from __future__ import annotations

from dgm.core import check_integer, check_levels
from dgm.models.adversarial.base import GANModel, check_image_shape
from dgm.models.adversarial.resnet_networks import ResNetCritic, ResNetGenerator, attention_resolutions
from dgm.nn.spectral_norm import normalise_every_layer
from dgm.registry import register_model


def check_attention_resolution(resolution, shape: tuple[int, int, int]) -> int:
    """``resolution`` if both networks have feature maps of it, the largest of theirs if ``None``, else
    ``ValueError``."""
    choices = attention_resolutions(shape)
    if resolution is None:
        return choices[-1]
    if resolution not in choices:
        raise ValueError(f"attention_resolution must be a resolution of both networks' feature maps, one of "
                         f"{choices} for images of shape {shape}, got {resolution!r}")
    return resolution


@register_model("sagan", "SAGAN (Zhang et al. 2019) for images: ResNet generator and critic with self-attention, "
                         "spectral norm in both, hinge loss, TTUR; conditional by projection")
class SAGAN(GANModel):
    def __init__(self, shape: tuple[int, ...], levels: int = 256, latent_dim: int = 128, width: int = 128,
                 attention_resolution: int | None = None, loss: str = "hinge", critic_steps: int = 1,
                 gradient_penalty: float = 0.0, r1: float = 0.0, clip_weights: float | None = None,
                 spectral_norm: bool = True, label_smoothing: float = 0.0, generator_lr: float | None = 1e-4,
                 critic_lr: float | None = 4e-4, betas: tuple[float, float] = (0.0, 0.9),
                 n_classes: int | None = None, calibration_steps: int = 0):
        shape = check_image_shape(shape, "sagan")
        super().__init__(shape, check_levels(levels, "sagan"), latent_dim, loss, critic_steps, gradient_penalty,
                         r1, clip_weights, spectral_norm, label_smoothing, generator_lr, critic_lr, betas,
                         n_classes, calibration_steps)
        check_integer(width, "width", 1)
        self.attention_resolution = check_attention_resolution(attention_resolution, shape)
        self.generator = ResNetGenerator(shape, latent_dim, 2 * width, self.n_classes, self.attention_resolution)
        self.critic = ResNetCritic(shape, width, self.n_classes, self.attention_resolution)
        self.finish_critic()
        if self.spectral_norm:  # in the generator as well (§4.1)
            normalise_every_layer(self.generator)
