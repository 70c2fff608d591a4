"""The variational autoencoder (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes"), one model assembled from
parts rather than one class per paper (lectures 3–4 and 7).

A latent ``z ~ p(z)`` and a decoder ``p(x | z)`` define ``p(x) = ∫ p(x | z) p(z) dz``; an encoder ``q(z | x)``
bounds it (the evidence lower bound, eq. 3 of the paper):

    log p(x) ≥ ELBO(x) = E_q[log p(x | z)] − KL(q(z | x) ‖ p(z)),

with the KL in closed form where the posterior is a diagonal Gaussian and the prior the standard normal (appendix B,
:func:`dgm.distributions.normal_kl`), and as the Monte Carlo estimate ``log q(z | x) − log p(z)`` otherwise. Its
parts, chosen by options:

- ``encoder``/``decoder`` networks ``"mlp"`` (widths ``hidden``) or ``"conv"`` (``widths``, homework 2's ConvVAE
  shapes; :mod:`dgm.models.latent.networks`), and the decoder ``"pixelcnn"`` (PixelVAE,
  :class:`~dgm.models.latent.decoders.PixelCNNDecoder`);
- the decoder's ``output`` distribution: ``"bernoulli"``, ``"categorical"``, ``"logistic"`` (mixture) or
  ``"gaussian"`` (``decoder_scale`` ``"learned"`` or ``"fixed"`` at σ = 1; discretized for discrete data)
  (:mod:`dgm.models.latent.decoders`);
- the ``posterior``: ``"diagonal"`` Gaussian, or a flow of ``posterior_layers`` ``"iaf"`` or ``"planar"`` layers on
  it (:mod:`dgm.models.latent.posteriors`);
- the ``prior``: ``"standard"``, ``"mog"``, ``"vamp"``, ``"realnvp"``, ``"maf"`` or ``"arf"``
  (:mod:`dgm.models.latent.priors`).

**Objectives** (:meth:`training_step`; the trainer's step clock ``t`` drives the schedules):

- β-VAE (Higgins et al., 2017, eq. 4): ``E_q[log p(x | z)] − β KL``;
- KL warm-up (Sønderby et al., 2016, "Ladder VAE", §2.3; Bowman et al., 2016): ``β_t = β · min(1, t / warmup_steps)``;
- free bits (Kingma et al., 2016, eq. 15): each latent dimension's KL, averaged over the batch, counts as at least
  ``λ = free_bits`` nats, ``Σ_j max(λ, E_batch KL_j)``, so the optimiser gains nothing by pushing it below ``λ``
  (for a posterior or prior without a per-dimension KL: the whole KL counts as at least ``λ · latent_dim``);
- IWAE (Burda, Grosse & Salakhutdinov, 2016, eq. 8): ``iwae_samples = K > 1`` maximises ``L_K``;
- DIP-VAE (Kumar, Sattigeri & Balakrishnan, 2018, eqs. 6–7): ``dip = "i"`` adds
  ``λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²`` with ``C = Cov_batch[μ(x)]`` and ``λ_d = 10 λ_od`` (``"ii"``:
  ``C = Cov_batch[μ(x)] + E_batch[diag σ²(x)]``, the covariance of the aggregate posterior, and ``λ_d = λ_od``),
  ``λ_od = dip_lambda``.

**Evaluation.** :meth:`loss` is the negative ELBO (``β = 1``, no free bits: the bound itself) with its two terms;
:meth:`log_prob` with ``samples = K`` is one draw of the importance-weighted bound ``L_K ≤ log p(x)``, so
``likelihood = "lower_bound"``. :meth:`sample` draws ``z ~ p(z)`` and then ``x ~ p(x | z)``, or the decoder's mean
with ``decoder_noise=False``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from dgm.core import GenerativeModel, Losses, Update, check_integer, check_levels
from dgm.distributions import log_mean_exp, normal_kl
from dgm.flows.autoregressive import InverseAutoregressive, autoregressive_flow
from dgm.flows.bijection import Compose
from dgm.flows.planar import AmortizedPlanar
from dgm.flows.transforms import Affine
from dgm.models.latent.decoders import PixelCNNDecoder, decoded, factorized_decoder
from dgm.models.latent.diagnostics import latent_diagnostics
from dgm.models.latent.networks import conv_encoder, encoder_input, mlp_encoder
from dgm.models.latent.posteriors import Encoding, FlowPosterior, GaussianPosterior
from dgm.models.latent.priors import make_prior
from dgm.registry import register_model

NETWORKS = ("mlp", "conv")
POSTERIORS = ("diagonal", "iaf", "planar")
DIP_VARIANTS = (None, "i", "ii")
EVALUATION_ELEMENTS = 2 ** 24  # decoder outputs per chunk of importance samples when log_prob takes many


@register_model("vae", "VAE assembled from parts: MLP/conv/PixelCNN decoders, Gaussian/flow posteriors, standard/MoG/"
                       "VampPrior/flow priors; beta, warm-up, free bits, IWAE, DIP; bound L_K")
class VAE(GenerativeModel):
    """A VAE for data of ``shape`` (vectors ``(D,)`` or images ``(C, H, W)``) with ``levels`` values (``None``:
    continuous); every part and objective is an option (see the module docstring)."""

    likelihood = "lower_bound"

    def __init__(self, shape: Sequence[int], levels: int | None = None, latent_dim: int = 16,
                 encoder: str = "mlp", decoder: str = "mlp", hidden: Sequence[int] = (512, 256),
                 widths: Sequence[int] = (32, 32, 64), output: str | None = None, decoder_scale: str = "learned",
                 components: int = 5, posterior: str = "diagonal", posterior_layers: int = 2,
                 posterior_hidden: Sequence[int] = (128, 128), prior: str = "standard", prior_components: int = 10,
                 prior_layers: int = 4, prior_hidden: Sequence[int] = (64, 64), beta: float = 1.0,
                 warmup_steps: int = 0, free_bits: float = 0.0, iwae_samples: int = 1, dip: str | None = None,
                 dip_lambda: float = 10.0, pixelcnn_filters: int = 32, pixelcnn_layers: int = 3,
                 pixelcnn_kernel: int = 7):
        super().__init__()
        self.shape = tuple(shape)
        self.levels = check_levels(levels, "VAE", allow_continuous=True)
        self.latent_dim = check_integer(latent_dim, "latent_dim", 1)
        self._check_objective(beta, warmup_steps, free_bits, iwae_samples, dip, dip_lambda)
        self.beta, self.warmup_steps, self.free_bits = float(beta), warmup_steps, float(free_bits)
        self.iwae_samples, self.dip, self.dip_lambda = iwae_samples, dip, float(dip_lambda)
        context_dim = 0 if posterior == "diagonal" else 2 * self.latent_dim
        encoder_network = self._network(encoder, "encoder", hidden, widths, out=2 * self.latent_dim + context_dim)
        self.posterior = self._posterior(posterior, encoder_network, posterior_layers, posterior_hidden, context_dim)
        self.prior = make_prior(prior, self.latent_dim, prior_components, prior_layers, prior_hidden, self.posterior,
                                self.shape, bounded_inputs=self.levels is not None)
        self.decoder = self._decoder(decoder, output, decoder_scale, components, hidden, widths,
                                     (pixelcnn_filters, pixelcnn_layers, pixelcnn_kernel))

    # -- construction ---------------------------------------------------------------------------------------------
    @staticmethod
    def _check_objective(beta, warmup_steps, free_bits, iwae_samples, dip, dip_lambda) -> None:
        for name, value in (("beta", beta), ("dip_lambda", dip_lambda), ("free_bits", free_bits)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or \
                    (name == "beta" and value == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'beta' else 'non-negative'} number, "
                                 f"got {value!r}")
        check_integer(warmup_steps, "warmup_steps", 0)
        check_integer(iwae_samples, "iwae_samples", 1)
        if dip not in DIP_VARIANTS:
            raise ValueError(f"dip must be None, 'i' or 'ii' (DIP-VAE-I or -II), got {dip!r}")
        if iwae_samples > 1 and (beta != 1 or warmup_steps or free_bits or dip):
            raise ValueError("iwae_samples > 1 trains the importance-weighted bound L_K itself: it takes no beta, "
                             "warm-up, free bits or DIP term")

    def _network(self, kind: str, role: str, hidden: Sequence[int], widths: Sequence[int], out: int) -> nn.Module:
        """The encoder network, data ``(N, *shape)`` → ``(N, out)``."""
        if kind not in NETWORKS:
            raise ValueError(f"{role} must be one of {', '.join(NETWORKS)}, got {kind!r}")
        if kind == "conv":
            self._check_image(role)
            return conv_encoder(self.shape, widths, out)
        return mlp_encoder(self.shape, hidden, out)

    def _check_image(self, part: str) -> None:
        if len(self.shape) != 3:
            raise ValueError(f"a convolutional or PixelCNN {part} needs images (C, H, W), got shape {self.shape}")

    def _posterior(self, kind: str, network: nn.Module, layers: int, hidden: Sequence[int],
                   context_dim: int) -> GaussianPosterior:
        if kind not in POSTERIORS:
            raise ValueError(f"posterior must be one of {', '.join(POSTERIORS)}, got {kind!r}")
        if kind == "diagonal":
            return GaussianPosterior(network, self.latent_dim)
        check_integer(layers, "posterior_layers", 1)
        if kind == "iaf":
            if self.latent_dim < 2:
                raise ValueError("an IAF posterior needs latent_dim >= 2")
            flow = autoregressive_flow(InverseAutoregressive, self.latent_dim, layers, list(hidden), Affine(),
                                       context_dim=context_dim)
        else:
            flow = Compose(*(AmortizedPlanar(self.latent_dim, context_dim) for _ in range(layers)))
        return FlowPosterior(network, self.latent_dim, flow, context_dim)

    def _decoder(self, kind: str, output: str | None, scale: str, components: int, hidden: Sequence[int],
                 widths: Sequence[int], pixelcnn: tuple[int, int, int]) -> nn.Module:
        if kind == "pixelcnn":
            self._check_image("decoder")
            if self.levels is None:
                raise ValueError("a PixelCNN decoder models discrete images: the data need levels")
            if output not in (None, "categorical"):
                raise ValueError("the PixelCNN decoder's output is a categorical over the levels: leave output unset")
            filters, layers, kernel = pixelcnn
            return PixelCNNDecoder(self.shape, self.levels, self.latent_dim, filters, layers, kernel)
        if kind not in NETWORKS:
            raise ValueError(f"decoder must be one of mlp, conv, pixelcnn, got {kind!r}")
        if kind == "conv":
            self._check_image("decoder")
        return factorized_decoder(self.shape, self.levels, self.latent_dim, kind, output, scale, components,
                                  list(hidden)[::-1], widths)

    # -- the parts at work ----------------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Encoding:
        """The posterior's parameters for data ``x`` (checked by the caller), read as
        :func:`~dgm.models.latent.networks.encoder_input` gives them."""
        return self.posterior.encode(encoder_input(x, self.levels))

    @property
    def analytic_kl(self) -> bool:
        """Whether ``KL(q(z | x) ‖ p(z))`` has the closed form of a diagonal Gaussian against ``N(0, I)``."""
        return self.posterior.diagonal_gaussian and type(self.prior).__name__ == "StandardNormal"

    def weight_terms(self, x: Tensor, encoding: Encoding, samples: int) -> tuple[Tensor, Tensor, Tensor]:
        """``K = samples`` draws ``z_k ~ q(z | x)`` per example and their ``log p(x | z_k)``, ``log p(z_k)`` and
        ``log q(z_k | x)``, each ``(K, N)``."""
        z, log_q = self.posterior.rsample(encoding, samples)
        flat = z.reshape(-1, self.latent_dim)
        copies = x.expand(samples, *x.shape).reshape(-1, *x.shape[1:])
        log_likelihood = self.decoder.log_prob(copies, flat).view(samples, len(x))
        return log_likelihood, self.prior.log_prob(flat).view(samples, len(x)), log_q

    def log_importance_weights(self, x: Tensor, encoding: Encoding, samples: int) -> Tensor:
        """``log w_k = log p(x | z_k) + log p(z_k) − log q(z_k | x)`` for ``K = samples`` draws, ``(K, N)``."""
        log_likelihood, log_prior, log_q = self.weight_terms(x, encoding, samples)
        return log_likelihood + log_prior - log_q

    def elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Encoding]:
        """One draw of ``log p(x | z)`` ``(N,)``, the KL ``(N,)`` (closed form where it exists, else the one-sample
        estimate), the KL of each latent dimension ``(N, latent_dim)`` where it has a closed form (else ``None``),
        and the encoding."""
        encoding = self.encode(x)
        log_likelihood, log_prior, log_q = self.weight_terms(x, encoding, 1)
        if self.analytic_kl:
            kl_per_dimension = normal_kl(encoding.loc, encoding.log_scale)
            return log_likelihood[0], kl_per_dimension.sum(dim=1), kl_per_dimension, encoding
        return log_likelihood[0], (log_q - log_prior)[0], None, encoding

    # -- the protocol ---------------------------------------------------------------------------------------------
    def loss(self, x: Tensor) -> Losses:
        """The negative ELBO in nats per example (``loss``), its reconstruction and KL terms, and bits/dim."""
        log_likelihood, kl, _, _ = self.elbo_terms(x)
        negative_elbo = kl.mean() - log_likelihood.mean()
        return {"loss": negative_elbo, "reconstruction": -log_likelihood.mean(), "kl": kl.mean(),
                "bpd": negative_elbo / (math.prod(self.shape) * math.log(2))}

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """One update of the chosen objective at step ``t = step`` of the run (see the module docstring)."""
        yield "model", (self._iwae_objective(x) if self.iwae_samples > 1 else self._elbo_objective(x, step))

    def _iwae_objective(self, x: Tensor) -> Losses:
        bound = log_mean_exp(self.log_importance_weights(x, self.encode(x), self.iwae_samples))
        return {"loss": -bound.mean(), "iwae_bound": bound.mean()}

    def _elbo_objective(self, x: Tensor, step: int) -> Losses:
        log_likelihood, kl, kl_per_dimension, encoding = self.elbo_terms(x)
        beta = self.beta * (min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0)
        kl_term = self._free_bits(kl, kl_per_dimension) if self.free_bits else kl.mean()
        losses = {"loss": beta * kl_term - log_likelihood.mean(), "reconstruction": -log_likelihood.mean(),
                  "kl": kl.mean(), "beta": torch.tensor(beta)}
        if self.dip:
            losses["dip"] = self._dip_penalty(encoding)
            losses["loss"] = losses["loss"] + losses["dip"]
        return losses

    def _free_bits(self, kl: Tensor, kl_per_dimension: Tensor | None) -> Tensor:
        if kl_per_dimension is None:
            return kl.mean().clamp(min=self.free_bits * self.latent_dim)
        return kl_per_dimension.mean(dim=0).clamp(min=self.free_bits).sum()

    def _dip_penalty(self, encoding: Encoding) -> Tensor:
        covariance = torch.cov(encoding.loc.T).reshape(self.latent_dim, self.latent_dim)
        diagonal_weight = 10 * self.dip_lambda
        if self.dip == "ii":
            covariance = covariance + torch.diag(torch.exp(2 * encoding.log_scale).mean(dim=0))
            diagonal_weight = self.dip_lambda
        diagonal = torch.diagonal(covariance)
        off_diagonal = covariance - torch.diag(diagonal)
        return self.dip_lambda * off_diagonal.pow(2).sum() + diagonal_weight * (diagonal - 1).pow(2).sum()

    def log_prob(self, x: Tensor, samples: int = 1) -> Tensor:
        """One draw of the importance-weighted bound ``L_K`` with ``K = samples`` (``K = 1``: the ELBO), ``(N,)``;
        the samples are drawn in chunks so that many of them (``K = 1000``) fit in memory."""
        check_integer(samples, "samples", 1)
        encoding = self.encode(x)
        chunk = max(1, min(samples, EVALUATION_ELEMENTS // (len(x) * math.prod(self.shape))))
        weights = [self.log_importance_weights(x, encoding, min(chunk, samples - start))
                   for start in range(0, samples, chunk)]
        return log_mean_exp(torch.cat(weights))

    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """``z ~ p(z)``, then ``x ~ p(x | z)``; ``decoder_noise=False`` returns the decoder's mean instead (see
        :meth:`decode`)."""
        return self.decode(self.prior.sample(n), decoder_noise)

    @torch.no_grad()
    def decode(self, codes: Tensor, decoder_noise: bool = True) -> Tensor:
        """A draw of ``p(x | z)`` for latents ``z`` ``(N, latent_dim)``, or the decoder's mean (rounded to the
        nearest value for discrete data, so that it follows the data convention)."""
        return decoded(self.decoder, codes, self.levels, decoder_noise)

    def latent_codes(self, x: Tensor) -> Tensor:
        """The posterior mean ``μ(x)`` of each example, ``(N, latent_dim)``."""
        return self.encode(x).loc

    @torch.no_grad()
    def latent_diagnostics(self, x: Tensor) -> dict:
        """How the model uses its latent space on data ``x``: the KL of each latent dimension, active units,
        posterior collapse and the ELBO surgery ``KL = I[x, z] + KL(q(z) ‖ p(z))``, a JSON-able dict
        (:func:`dgm.models.latent.diagnostics.latent_diagnostics`)."""
        return latent_diagnostics(self, x)
