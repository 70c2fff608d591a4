"""The original GAN of Goodfellow et al. (2014) for vector data.

The discriminator ``D(x) = sigmoid(d(x))`` maximises ``E_π log D(x) + E_z log(1 - D(G(z)))`` (eq. 1 of the paper);
with logits ``d`` that is minimising ``softplus(-d(x)) + softplus(d(G(z)))``. The generator minimises either the
same minimax objective, ``E log(1 - D(G(z))) = -E softplus(d(G(z)))`` (saturating), or the non-saturating
``-E log D(G(z)) = E softplus(-d(G(z)))`` that the paper recommends in practice (section 3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.core import AdversarialModel, check_sample_count
from dgm.nn.mlp import mlp
from dgm.registry import register_model

GENERATOR_LOSSES = ("non_saturating", "minimax")


@register_model("gan", "GAN (Goodfellow et al. 2014), MLP generator and discriminator, for vector data")
class GAN(AdversarialModel):
    adam_betas = (0.5, 0.999)

    def __init__(self, shape: tuple[int, ...], latent_dim: int = 16, hidden: list[int] = (128, 128),
                 generator_loss: str = "non_saturating", critic_steps: int = 1):
        super().__init__()
        if len(shape) != 1:
            raise ValueError(f"GAN models vectors of shape (D,); got shape {tuple(shape)}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}")
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}")
        self.latent_dim, self.critic_steps, self.saturating = latent_dim, critic_steps, generator_loss == "minimax"
        self.generator = mlp(latent_dim, hidden, shape[0], activation=torch.nn.LeakyReLU)
        self.discriminator = mlp(shape[0], hidden, 1, activation=torch.nn.LeakyReLU)

    def generator_parameters(self):
        return self.generator.parameters()

    def critic_parameters(self):
        return self.discriminator.parameters()

    def _generate(self, n: int) -> Tensor:
        return self.generator(torch.randn(n, self.latent_dim, device=self.device))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self._generate(check_sample_count(n))

    def critic_loss(self, x: Tensor) -> dict[str, Tensor]:
        real_logits = self.discriminator(self.check(x)).squeeze(1)
        fake_logits = self.discriminator(self._generate(len(x)).detach()).squeeze(1)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return {"loss": loss, "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}

    def generator_loss(self, x: Tensor) -> dict[str, Tensor]:
        fake_logits = self.discriminator(self._generate(len(x))).squeeze(1)
        loss = -F.softplus(fake_logits).mean() if self.saturating else F.softplus(-fake_logits).mean()
        return {"loss": loss}
