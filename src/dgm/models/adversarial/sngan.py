"""SN-GAN for images (Miyato, Kataoka, Koyama & Yoshida, 2018, "Spectral Normalization for Generative Adversarial
Networks"): the ResNet generator and critic of its appendix B (Table 4 for 32x32 images;
:mod:`dgm.models.adversarial.resnet_networks`), trained with any loss and trick of
:class:`~dgm.models.adversarial.base.GANModel`.

The defaults are the paper's ResNet recipe (§4): every critic layer spectrally normalised, the hinge loss, Adam
with ``α = 2·10⁻⁴`` and ``(β1, β2) = (0, 0.9)`` for both networks, and ``n_dis = 5`` critic updates per generator
update. ``width`` is the critic's channels (128 in Table 4); the generator has twice as many (256). With
``n_classes`` the generator's batch normalisations are class-conditional and the critic's output is a projection
(Miyato & Koyama, 2018, "cGANs with Projection Discriminator").
"""
from __future__ import annotations

from dgm.core import check_integer, check_levels
from dgm.models.adversarial.base import GANModel, check_image_shape
from dgm.models.adversarial.resnet_networks import ResNetCritic, ResNetGenerator
from dgm.registry import register_model


@register_model("sngan", "SN-GAN (Miyato et al. 2018) for images: ResNet generator and critic, spectral norm, "
                         "hinge loss, n_dis = 5; conditional by projection")
class SNGAN(GANModel):
    def __init__(self, shape: tuple[int, ...], levels: int = 256, latent_dim: int = 128, width: int = 128,
                 loss: str = "hinge", critic_steps: int = 5, gradient_penalty: float = 0.0, r1: float = 0.0,
                 clip_weights: float | None = None, spectral_norm: bool = True, label_smoothing: float = 0.0,
                 generator_lr: float | None = 2e-4, critic_lr: float | None = 2e-4,
                 betas: tuple[float, float] = (0.0, 0.9), n_classes: int | None = None,
                 calibration_steps: int = 0):
        shape = check_image_shape(shape, "sngan")
        super().__init__(shape, check_levels(levels, "sngan"), latent_dim, loss, critic_steps, gradient_penalty,
                         r1, clip_weights, spectral_norm, label_smoothing, generator_lr, critic_lr, betas,
                         n_classes, calibration_steps)
        check_integer(width, "width", 1)
        self.generator = ResNetGenerator(shape, latent_dim, 2 * width, self.n_classes)
        self.critic = ResNetCritic(shape, width, self.n_classes)
        self.finish_critic()
