"""GANs of vectors with MLP generator and critic: the GAN of Goodfellow et al. (2014), and with other options WGAN,
WGAN-GP, LSGAN, hinge/SN-GAN and the f-GANs on the 2D sets (homework 5, task 2).

The generator maps ``z ~ N(0, I)`` (``latent_dim``, 16 in homework 5) through an MLP to a point; the critic maps a
point through an MLP to one raw output ``v``. With the default non-saturating loss the discriminator is
``D(x) = σ(v)`` and the two minimise ``softplus(−v(x)) + softplus(v(G(z)))`` and ``softplus(−v(G(z)))`` (eq. 1 and
§3 of the paper). Every other loss and trick is an option of :class:`~dgm.models.adversarial.base.GANModel`:
homework 5's WGAN is ``loss="wasserstein", clip_weights=0.01, critic_steps=5, betas=(0, 0.9)``, its WGAN-GP the
same with ``gradient_penalty=10`` instead of the clipping. ``critic_activation="maxmin"`` gives the critic the
gradient-norm-preserving :class:`~dgm.nn.mlp.MaxMin` activation, for a spectrally normalised critic that is
1-Lipschitz with slopes near 1 (Anil et al., 2019). ``critic_lipschitz=K`` lets the critic read ``K x``: a
spectrally normalised critic is then K-Lipschitz in the data's units. The constant 1 of SN-GAN is a statement about
the critic's input scale; on the 25 Gaussians (σ = 0.0177) a 1-Lipschitz critic changes by at most 0.1 across a
well, too little for a hinge loss of margin 1 to shape it.

A class-conditional GAN (Mirza & Osindero, 2014, "Conditional Generative Adversarial Nets", eq. 2) feeds the one-hot
label to both networks, appended to their inputs: ``G(z, y)`` and ``D(x, y)``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.models.adversarial.base import GANModel
from dgm.nn.mlp import MaxMin, mlp
from dgm.registry import register_model

CRITIC_ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "maxmin": MaxMin}


class LabelledMLP(nn.Module):
    """An MLP of its inputs times ``input_scale`` with the one-hot class label appended (nothing appended without
    classes); a critic's single output is returned as ``(N,)``."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, n_classes: int | None,
                 activation: type[nn.Module] = nn.LeakyReLU, input_scale: float = 1.0):
        super().__init__()
        self.n_classes, self.input_scale = n_classes, input_scale
        self.net = mlp(in_features + (n_classes or 0), hidden, out_features, activation=activation)

    def forward(self, inputs: Tensor, labels: Tensor | None = None) -> Tensor:
        inputs = inputs * self.input_scale
        if self.n_classes is not None:
            inputs = torch.cat([inputs, F.one_hot(labels, self.n_classes).to(inputs.dtype)], dim=1)
        out = self.net(inputs)
        return out.squeeze(1) if out.shape[1] == 1 else out


@register_model("gan", "GAN of vectors with MLP generator and critic; any adversarial loss (WGAN, WGAN-GP, hinge, "
                       "LSGAN, f-GAN), spectral norm, R1")
class GAN(GANModel):
    def __init__(self, shape: tuple[int, ...], latent_dim: int = 16, hidden: list[int] = (128, 128),
                 loss: str = "non_saturating", critic_steps: int = 1, gradient_penalty: float = 0.0,
                 r1: float = 0.0, clip_weights: float | None = None, spectral_norm: bool = False,
                 label_smoothing: float = 0.0, generator_lr: float | None = None, critic_lr: float | None = None,
                 betas: tuple[float, float] = (0.5, 0.999), n_classes: int | None = None,
                 critic_activation: str = "leaky_relu", critic_lipschitz: float = 1.0, calibration_steps: int = 0):
        if len(shape) != 1:
            raise ValueError(f"gan models vectors of shape (D,); got shape {tuple(shape)} (image GANs: dcgan, sngan)")
        dim = shape[0]
        super().__init__(shape, None, latent_dim, loss, critic_steps, gradient_penalty, r1, clip_weights,
                         spectral_norm, label_smoothing, generator_lr, critic_lr, betas, n_classes,
                         calibration_steps)
        self.generator = LabelledMLP(latent_dim, hidden, dim, self.n_classes)
        if critic_activation not in CRITIC_ACTIVATIONS:
            raise ValueError(f"critic_activation must be one of {', '.join(CRITIC_ACTIVATIONS)}, "
                             f"got {critic_activation!r}")
        if not critic_lipschitz > 0:
            raise ValueError(f"critic_lipschitz must be positive, got {critic_lipschitz}")
        self.critic = LabelledMLP(dim, hidden, 1, self.n_classes, CRITIC_ACTIVATIONS[critic_activation],
                                  float(critic_lipschitz))
        self.finish_critic()
