"""DCGAN for images (Radford, Metz & Chintala, 2016): the transposed-convolution generator and convolutional critic
of :mod:`dgm.models.adversarial.networks`, in the course's shapes (homework 5, task 3; homework 6, task 2), trained
with any loss and trick of :class:`~dgm.models.adversarial.base.GANModel`. The paper's recipe (lecture 11): ReLU in
G, LeakyReLU 0.2 in D, tanh output, Adam 2e-4 with β1 = 0.5, batch 128. Homework 5's WGAN-GP is
``loss="wasserstein", gradient_penalty=10, critic_steps=5, betas=(0, 0.9)``; homework 6's SN-GAN
``loss="wasserstein", spectral_norm=True, betas=(0, 0.9)``.
"""
from __future__ import annotations

from dgm.core import check_integer, check_levels
from dgm.models.adversarial.base import GANModel, check_image_shape
from dgm.models.adversarial.networks import DCGANCritic, DCGANGenerator
from dgm.registry import register_model


@register_model("dcgan", "DCGAN (Radford et al. 2016) for images: transposed-convolution generator, convolutional "
                         "critic; any adversarial loss, spectral norm, gradient penalty, conditional")
class DCGAN(GANModel):
    def __init__(self, shape: tuple[int, ...], levels: int = 256, latent_dim: int = 128, width: int = 64,
                 loss: str = "non_saturating", critic_steps: int = 1, gradient_penalty: float = 0.0,
                 r1: float = 0.0, clip_weights: float | None = None, spectral_norm: bool = False,
                 label_smoothing: float = 0.0, generator_lr: float | None = None, critic_lr: float | None = None,
                 betas: tuple[float, float] = (0.5, 0.999), n_classes: int | None = None,
                 calibration_steps: int = 0):
        shape = check_image_shape(shape, "dcgan")
        super().__init__(shape, check_levels(levels, "dcgan"), latent_dim, loss, critic_steps, gradient_penalty,
                         r1, clip_weights, spectral_norm, label_smoothing, generator_lr, critic_lr, betas,
                         n_classes, calibration_steps)
        check_integer(width, "width", 1)
        self.generator = DCGANGenerator(shape, latent_dim, width, self.n_classes)
        self.critic = DCGANCritic(shape, width, self.n_classes)
        self.finish_critic()
