"""The original GAN of Goodfellow et al. (2014) for vector data.

The discriminator ``D(x) = sigmoid(d(x))`` maximises ``E_π log D(x) + E_z log(1 - D(G(z)))`` (eq. 1 of the paper);
with logits ``d`` that is minimising ``softplus(-d(x)) + softplus(d(G(z)))``. The generator minimises either the
same minimax objective, ``E log(1 - D(G(z))) = -E softplus(d(G(z)))`` (saturating), or the non-saturating
``-E log D(G(z)) = E softplus(-d(G(z)))`` that the paper recommends in practice (section 3).

A class-conditional GAN (Mirza & Osindero, 2014, "Conditional Generative Adversarial Nets", eq. 2) feeds the one-hot
label to both networks: ``G(z, y)`` and ``D(x, y)``. ``generator_lr`` and ``critic_lr`` give the two networks their
own learning rates (the two time-scale update rule of Heusel et al., 2017); by default both take the run's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.core import AdversarialModel, check_integer, check_labels
from dgm.nn.mlp import mlp
from dgm.registry import register_model

GENERATOR_LOSSES = ("non_saturating", "minimax")


@register_model("gan", "GAN (Goodfellow et al. 2014), MLP generator and discriminator, for vector data")
class GAN(AdversarialModel):
    def __init__(self, shape: tuple[int, ...], latent_dim: int = 16, hidden: list[int] = (128, 128),
                 generator_loss: str = "non_saturating", critic_steps: int = 1, n_classes: int | None = None,
                 generator_lr: float | None = None, critic_lr: float | None = None):
        super().__init__()
        if len(shape) != 1:
            raise ValueError(f"GAN models vectors of shape (D,); got shape {tuple(shape)}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}")
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}")
        check_integer(latent_dim, "latent_dim", 1)
        for name, lr in (("generator_lr", generator_lr), ("critic_lr", critic_lr)):
            if lr is not None and not (isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0):
                raise ValueError(f"{name} must be a positive number (or None: the run's lr), got {lr!r}")
        self.n_classes = None if n_classes is None else check_integer(n_classes, "n_classes", 2)
        self.latent_dim, self.critic_steps, self.saturating = latent_dim, critic_steps, generator_loss == "minimax"
        self.generator_lr, self.critic_lr = generator_lr, critic_lr
        label_width = n_classes or 0
        self.generator = mlp(latent_dim + label_width, hidden, shape[0], activation=torch.nn.LeakyReLU)
        self.discriminator = mlp(shape[0] + label_width, hidden, 1, activation=torch.nn.LeakyReLU)

    def generator_parameters(self):
        return self.generator.parameters()

    def critic_parameters(self):
        return self.discriminator.parameters()

    def _with_labels(self, inputs: Tensor, labels: Tensor | None) -> Tensor:
        """``inputs`` with the one-hot labels appended (class-conditional models), else unchanged."""
        if self.n_classes is None:
            if labels is not None:
                raise ValueError("labels were given, but this GAN is not class-conditional (n_classes=None)")
            return inputs
        if labels is None:
            raise ValueError(f"this GAN is class-conditional: give labels= (class indices 0..{self.n_classes - 1})")
        one_hot = F.one_hot(check_labels(labels, len(inputs), self.n_classes), self.n_classes)
        return torch.cat([inputs, one_hot.to(inputs.dtype)], dim=1)

    def _generate(self, n: int, labels: Tensor | None) -> Tensor:
        z = torch.randn(n, self.latent_dim, device=self.device)
        return self.generator(self._with_labels(z, labels))

    def _critic(self, x: Tensor, labels: Tensor | None) -> Tensor:
        return self.discriminator(self._with_labels(x, labels)).squeeze(1)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        return self._generate(n, labels)

    def critic_loss(self, x: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        real_logits = self._critic(x, labels)
        fake_logits = self._critic(self._generate(len(x), labels).detach(), labels)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return {"loss": loss, "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}

    def generator_loss(self, x: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        fake_logits = self._critic(self._generate(len(x), labels), labels)
        loss = -F.softplus(fake_logits).mean() if self.saturating else F.softplus(-fake_logits).mean()
        return {"loss": loss}
