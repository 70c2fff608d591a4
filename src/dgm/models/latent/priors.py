"""Priors ``p(z)`` of VAEs, each with ``log_prob(z)`` for latents ``(B, latent_dim)`` and ``sample(n)``.

- ``"standard"``: ``N(0, I)`` (Kingma & Welling, 2014), :class:`~dgm.distributions.StandardNormal`;
- ``"mog"``: a learned mixture of Gaussians, :class:`~dgm.distributions.MixtureOfGaussians` (Dilokthanakul et al.,
  2016; lecture 7's "the prior is learnable");
- ``"vamp"``: the VampPrior, the mixture of the posteriors of ``K`` learned pseudo-inputs ``u_k`` (Tomczak &
  Welling, 2018, "VAE with a VampPrior", eq. 9), :class:`VampPrior`:

      p(z) = (1/K) Σ_k q(z | u_k);

- ``"realnvp"`` and ``"maf"``: a flow over the latent space built from :mod:`dgm.flows` (affine couplings with
  alternating masks; MADE layers with the ordering reversed between them), whose exact density is the prior (the flow priors of lecture 7; Chen et al., 2017, "Variational Lossy Autoencoder", §2.3);
- ``"arf"``: homework 4's autoregressive-flow prior, one MADE (hidden 512, 512) in the density direction,
  ``ε = z · e^{log σ(z)} + μ(z)`` with ``log σ = tanh(·)``, ``log p(z) = log N(ε) + Σ log σ``: a one-layer MAF
  whose log-scales are soft-clamped to ``±1`` (:class:`~dgm.flows.transforms.Affine` with ``max_log_scale = 1``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.core import PlacedModule, check_integer
from dgm.distributions import MixtureOfGaussians, StandardNormal
from dgm.distributions.functional import equal_mixture_log_density
from dgm.flows import Compose, FlowModel, mlp_coupling
from dgm.flows.autoregressive import MaskedAutoregressive, autoregressive_flow
from dgm.flows.permutation import alternating_mask
from dgm.flows.transforms import Affine

PRIORS = ("standard", "mog", "vamp", "realnvp", "maf", "arf")


class VampPrior(PlacedModule):
    """``p(z) = (1/K) Σ_k q(z | u_k)`` with ``K`` learned pseudo-inputs ``u_k`` in the encoder's input space.

    The posterior is the VAE's own (a reference, not a submodule: its weights belong to the VAE once). For discrete
    data, whose encoder reads ``[0, 1]``, a pseudo-input is the sigmoid of a free parameter (the paper's hard-tanh
    keeps them in the data's range); for continuous data it is free. They start near the middle of the range.
    """

    def __init__(self, posterior, input_shape: Sequence[int], pseudo_inputs: int, bounded: bool):
        super().__init__()
        self.__dict__["posterior"] = posterior
        self.raw_inputs = nn.Parameter(0.1 * torch.randn(check_integer(pseudo_inputs, "pseudo_inputs", 1),
                                                         *input_shape))
        self.bounded = bounded

    def pseudo_inputs(self) -> Tensor:
        return torch.sigmoid(self.raw_inputs) if self.bounded else self.raw_inputs

    def log_prob(self, z: Tensor) -> Tensor:
        """``log (1/K) Σ_k q(z | u_k)`` of ``z`` ``(B, latent_dim)``, ``(B,)``, by two matrix products
        (:func:`~dgm.distributions.functional.equal_mixture_log_density`)."""
        encoding = self.posterior.encode(self.pseudo_inputs())
        return equal_mixture_log_density(z, encoding.loc, encoding.log_scale).to(z.dtype)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """A pseudo-input ``k`` uniformly, then ``z ~ q(z | u_k)``."""
        encoding = self.posterior.encode(self.pseudo_inputs())
        k = torch.randint(len(self.raw_inputs), (n,), device=self.device)
        return encoding.loc[k] + torch.exp(encoding.log_scale[k]) * torch.randn_like(encoding.loc[k])


def make_prior(kind: str, latent_dim: int, components: int, layers: int, hidden: Sequence[int], posterior,
               input_shape: Sequence[int], bounded_inputs: bool) -> nn.Module:
    """The prior named ``kind`` (one of ``PRIORS``) over ``latent_dim`` dimensions: ``components`` mixture
    components or pseudo-inputs, ``layers`` flow layers with MADE or coupling networks of widths ``hidden``."""
    shape = (latent_dim,)
    if kind == "standard":
        return StandardNormal(shape)
    if kind == "mog":
        return MixtureOfGaussians(shape, components)
    if kind == "vamp":
        if not posterior.diagonal_gaussian:
            raise ValueError("the VampPrior mixes Gaussian posteriors q(z | u_k): use posterior='diagonal' with it")
        return VampPrior(posterior, input_shape, components, bounded_inputs)
    check_integer(layers, "prior_layers", 1)
    if kind == "realnvp":
        if latent_dim < 2:
            raise ValueError("a RealNVP prior needs latent_dim >= 2")
        return FlowModel(Compose(*(mlp_coupling(alternating_mask(latent_dim, k), list(hidden), Affine())
                                   for k in range(layers))), StandardNormal(shape))
    if kind == "maf":
        return FlowModel(autoregressive_flow(MaskedAutoregressive, latent_dim, layers, list(hidden), Affine()),
                         StandardNormal(shape))
    if kind == "arf":
        return FlowModel(autoregressive_flow(MaskedAutoregressive, latent_dim, 1, [512, 512], Affine(1.0)),
                         StandardNormal(shape))
    raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {kind!r}")
