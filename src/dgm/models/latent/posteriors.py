"""Amortised posteriors ``q(z | x)`` of VAEs, drawn by reparameterisation so that the ELBO's gradient reaches them.

- :class:`GaussianPosterior`: ``q(z | x) = N(μ(x), diag σ(x)²)`` with ``z = μ + σ ⊙ ε``, ``ε ~ N(0, I)`` (Kingma &
  Welling, 2014, eqs. 9–10), and ``log q(z | x) = Σ_j log N(ε_j) − Σ_j log σ_j``.
- :class:`FlowPosterior`: the Gaussian draw ``z₀`` pushed through a flow ``z_T = f(z₀; h(x))`` conditioned on the
  encoder's context ``h`` (Rezende & Mohamed, 2015, eq. 13; Kingma et al., 2016, "Improved Variational Inference
  with Inverse Autoregressive Flow", Algorithm 1), with

      log q(z_T | x) = log N(z₀; μ, σ²) − log |det ∂z_T/∂z₀|.

  The flow's layers are dgm bijections with a context (:mod:`dgm.flows.bijection`), run in their generative
  direction ``inverse``: IAF layers (:class:`~dgm.flows.autoregressive.InverseAutoregressive`, one MADE pass each)
  or amortized planar layers (:class:`~dgm.flows.planar.AmortizedPlanar`).

The encoder network maps the (scaled) data to ``2·latent_dim + context_dim`` numbers: the mean, the log-scale and,
for a flow posterior, the context. :meth:`GaussianPosterior.encode` splits them into an :class:`Encoding`;
``rsample(encoding, samples)`` draws ``K = samples`` latents per example, ``(K, N, latent_dim)``, with their
``log q``, ``(K, N)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dgm.distributions.functional import normal_log_density
from dgm.flows.bijection import Compose

POSTERIOR_LOG_SCALE_RANGE = (-9.0, 9.0)  # e^-9 ≤ σ ≤ e^9: a posterior may grow sharp, never singular, nor so wide
# (far outside the data a network's output grows without bound) that its draws overflow


@dataclass
class Encoding:
    """The encoder's output for ``N`` examples: ``loc`` and ``log_scale`` ``(N, latent_dim)`` of the Gaussian, and
    the ``context`` ``(N, context_dim)`` of a flow posterior (``None`` for the Gaussian posterior)."""

    loc: Tensor
    log_scale: Tensor
    context: Tensor | None = None


class GaussianPosterior(nn.Module):
    """``q(z | x) = N(μ(x), diag σ(x)²)``; ``network`` maps inputs ``(N, ...)`` to ``(N, 2·latent_dim)``."""

    diagonal_gaussian = True  # the KL to a standard normal prior has a closed form
    context_dim = 0

    def __init__(self, network: nn.Module, latent_dim: int):
        super().__init__()
        self.network, self.latent_dim = network, latent_dim

    def encode(self, inputs: Tensor) -> Encoding:
        outputs = self.network(inputs)
        loc, log_scale, context = outputs.split([self.latent_dim, self.latent_dim, self.context_dim], dim=1)
        return Encoding(loc, log_scale.clamp(*POSTERIOR_LOG_SCALE_RANGE), context if self.context_dim else None)

    def rsample(self, encoding: Encoding, samples: int) -> tuple[Tensor, Tensor]:
        """``K = samples`` reparameterised draws per example ``(K, N, latent_dim)`` and their ``log q``, ``(K, N)``."""
        noise = torch.randn(samples, *encoding.loc.shape, device=encoding.loc.device, dtype=encoding.loc.dtype)
        z = encoding.loc + torch.exp(encoding.log_scale) * noise
        log_q = (normal_log_density(noise, 0.0, torch.zeros(())) - encoding.log_scale).sum(dim=-1)
        return z, log_q

    def log_prob(self, z: Tensor, encoding: Encoding) -> Tensor:
        """``log q(z | x)`` of latents ``(..., N, latent_dim)`` (VampPrior's mixture of posteriors)."""
        return normal_log_density(z, encoding.loc, encoding.log_scale).sum(dim=-1)


class FlowPosterior(GaussianPosterior):
    """The Gaussian posterior followed by ``flow``, a :class:`~dgm.flows.bijection.Compose` of bijections on
    ``(B, latent_dim)`` conditioned on the context ``(B, context_dim)``; ``network`` maps inputs to
    ``(N, 2·latent_dim + context_dim)``."""

    diagonal_gaussian = False

    def __init__(self, network: nn.Module, latent_dim: int, flow: Compose, context_dim: int):
        super().__init__(network, latent_dim)
        self.flow, self.context_dim = flow, context_dim

    def rsample(self, encoding: Encoding, samples: int) -> tuple[Tensor, Tensor]:
        z0, log_q0 = super().rsample(encoding, samples)
        context = encoding.context.expand(samples, *encoding.context.shape).reshape(-1, self.context_dim)
        z, log_abs_det = self.flow.inverse(z0.reshape(-1, self.latent_dim), context)
        return z.view_as(z0), log_q0 - log_abs_det.view_as(log_q0)

    def log_prob(self, z: Tensor, encoding: Encoding) -> Tensor:
        raise ValueError("the density of a flow posterior at a given z needs the flow's normalizing direction, "
                         "which IAF computes in latent_dim passes: use the diagonal posterior with the VampPrior")
