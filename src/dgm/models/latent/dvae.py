"""A VAE with categorical latents trained through the Gumbel-softmax relaxation (Jang, Gu & Poole, 2017,
"Categorical Reparameterization with Gumbel-Softmax"; Maddison, Mnih & Teh, 2017, "The Concrete Distribution"),
lecture 12.

**Model.** ``latents`` independent categorical variables ``z_l`` of ``categories`` classes each, one-hot vectors
with a uniform prior ``p(z) = Π_l 1/K``; a decoder ``p(x | z)`` (an MLP or a convolutional net of
:mod:`dgm.models.latent.networks` to a Bernoulli for binary images, else a categorical or discretized logistic
mixture, :func:`dgm.distributions.decoder_head`); an encoder gives the posterior ``q(z_l | x) = Cat(π_l(x))``.

**Gumbel-softmax** (Jang et al., eqs. 1–2). With ``g_k = −log(−log u_k)``, ``u_k ~ U(0, 1)``,

    argmax_k (log π_k + g_k) ~ Cat(π)                         (the Gumbel-max trick, eq. 1),
    y_k = softmax((log π + g) / τ)_k                          (its relaxation at temperature τ, eq. 2),

``y`` is differentiable in ``π``, tends to the one-hot sample as ``τ → 0`` and to the uniform vector as ``τ → ∞``.
The straight-through variant (``hard=True``, §2.2) feeds the decoder the one-hot ``argmax`` and back-propagates
through ``y``.

**Training** (:meth:`training_step`): the relaxed evidence lower bound, ``log p(x | y)`` for one relaxed sample
``y ~ q`` minus the analytic ``KL(q(z | x) ‖ p(z)) = Σ_l Σ_k π_lk log π_lk + latents · log K`` of the categorical
posterior (as Jang et al. train their VAE), with the temperature annealed by the run's step ``t`` (their schedule,
updated here at every step):

    τ_t = max(τ_min, τ_0 exp(−r t)).

**Evaluation.** The decoder never sees a relaxed sample under the model, so the relaxed objective is no bound on
its ``log p(x)``; evaluation uses exact categorical samples (Gumbel-max): :meth:`loss` is the negative ELBO
``−E_q[log p(x | z)] + KL``, :meth:`log_prob` with ``samples = S`` one draw of the importance-weighted bound
``L_S ≤ log p(x)`` (Burda et al., 2016, :func:`dgm.distributions.importance_weighted_bound`) with the weights
``p(x | z) p(z) / q(z | x)`` of one-hot ``z`` (``likelihood = "lower_bound"``).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.core import GenerativeModel, Losses, Update, check_data, check_integer, check_levels
from dgm.distributions import decoder_head, importance_weighted_bound
from dgm.models.latent.diagnostics import posterior_collapse
from dgm.models.latent.networks import conv_decoder, conv_encoder, encoder_input, mlp_decoder, mlp_encoder
from dgm.registry import register_model

NETWORKS = ("mlp", "conv")
DIAGNOSTIC_BATCH = 500  # images per pass of the encoder in latent_diagnostics


def gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel draws ``−log(−log u)`` of ``like``'s shape (``u`` kept above zero, so they are finite)."""
    u = torch.rand_like(like).clamp(min=torch.finfo(like.dtype).tiny)
    return -torch.log(-torch.log(u))


def gumbel_softmax(logits: Tensor, temperature: float, hard: bool = False) -> Tensor:
    """A relaxed one-hot sample of the categoricals of ``logits`` ``(..., K)`` at ``temperature`` (eq. 2); with
    ``hard``, the one-hot ``argmax`` forward and the relaxed sample's gradient backward (straight-through)."""
    relaxed = F.softmax((logits + gumbel_noise(logits)) / temperature, dim=-1)
    if not hard:
        return relaxed
    return F.one_hot(relaxed.argmax(dim=-1), logits.shape[-1]).to(relaxed.dtype) + relaxed - relaxed.detach()


def categorical_sample(logits: Tensor) -> Tensor:
    """An exact one-hot sample of the categoricals of ``logits`` ``(..., K)`` by the Gumbel-max trick (eq. 1)."""
    return F.one_hot((logits + gumbel_noise(logits)).argmax(dim=-1), logits.shape[-1]).to(logits.dtype)


@register_model("dvae", "discrete VAE: categorical latents, Gumbel-softmax relaxation (annealed, straight-through "
                        "option), uniform prior; bound L_K with exact categorical samples")
class GumbelSoftmaxVAE(GenerativeModel):
    """A VAE of images ``(C, H, W)`` with ``levels`` values and ``latents`` categorical latents of ``categories``
    classes; encoder and decoder ``network`` ``"mlp"`` (widths ``hidden``, mirrored in the decoder) or ``"conv"``
    (``widths``); temperature ``τ_0 = temperature``, ``τ_min = temperature_min``, ``r = anneal_rate``; ``output``
    the decoder's distribution (see the module docstring)."""

    likelihood = "lower_bound"

    def __init__(self, shape: Sequence[int], levels: int = 2, latents: int = 20, categories: int = 10,
                 network: str = "mlp", hidden: Sequence[int] = (512, 256), widths: Sequence[int] = (32, 32, 64),
                 temperature: float = 1.0, temperature_min: float = 0.5, anneal_rate: float = 1e-4,
                 hard: bool = False, output: str | None = None, components: int = 5):
        super().__init__()
        self.shape = tuple(shape)
        if len(self.shape) != 3:
            raise ValueError(f"the discrete VAE models images (C, H, W), got shape {self.shape}")
        self.levels = check_levels(levels, "the discrete VAE")
        self.latents = check_integer(latents, "latents", 1)
        self.categories = check_integer(categories, "categories", 2)
        if not 0 < temperature_min <= temperature or anneal_rate < 0:
            raise ValueError(f"the temperatures must satisfy 0 < temperature_min <= temperature and the anneal_rate "
                             f"be >= 0, got {temperature_min}, {temperature}, {anneal_rate}")
        self.initial_temperature, self.temperature_min, self.anneal_rate = temperature, temperature_min, anneal_rate
        self.hard = hard
        channels, size = self.shape[0], self.shape[1:]
        self.head = decoder_head(channels, self.levels, output, components)
        code = self.latents * self.categories
        if network == "mlp":
            self.encoder = mlp_encoder(self.shape, hidden, code)
            self.decoder = mlp_decoder(code, list(hidden)[::-1], (self.head.param_channels, *size))
        elif network == "conv":
            self.encoder = conv_encoder(self.shape, widths, code)
            self.decoder = conv_decoder(code, widths, self.head.param_channels, size)
        else:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")

    # -- the parts ------------------------------------------------------------------------------------------------
    def temperature(self, step: int) -> float:
        """``τ_t = max(τ_min, τ_0 exp(−r t))`` at the run's step ``t``."""
        return max(self.temperature_min, self.initial_temperature * math.exp(-self.anneal_rate * step))

    def posterior_logits(self, x: Tensor) -> Tensor:
        """``log π(x)`` up to a constant per latent, ``(N, latents, categories)``."""
        return self.encoder(encoder_input(x, self.levels)).view(len(x), self.latents, self.categories)

    def decoder_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x | z)`` of each example for one-hot (or relaxed) ``z`` ``(N, latents, categories)``, ``(N,)``."""
        return self.head.log_prob(self.decoder(z.flatten(1)), x)

    def kl(self, logits: Tensor) -> Tensor:
        """``KL(q(z | x) ‖ uniform) = Σ_l Σ_k π_lk log π_lk + latents · log K`` of each example, ``(N,)``."""
        return self.kl_per_latent(logits).sum(dim=1)

    def kl_per_latent(self, logits: Tensor) -> Tensor:
        """``KL(q(z_l | x) ‖ uniform) = Σ_k π_lk log π_lk + log K`` of each latent of each example, ``(N, latents)``."""
        log_q = F.log_softmax(logits, dim=-1)
        return (log_q.exp() * log_q).sum(dim=2) + math.log(self.categories)

    def log_weights(self, x: Tensor) -> Tensor:
        """``log p(x | z) + log p(z) − log q(z | x)`` for one exact sample ``z ~ q(z | x)`` per example, ``(N,)``."""
        logits = self.posterior_logits(x)
        z = categorical_sample(logits)
        log_q = (z * F.log_softmax(logits, dim=-1)).sum(dim=(1, 2))
        log_prior = -self.latents * math.log(self.categories)
        return self.decoder_log_prob(x, z) + log_prior - log_q

    # -- the protocol ---------------------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, samples: int = 1) -> Tensor:
        """One draw of the importance-weighted bound ``L_samples ≤ log p(x)`` of each example in nats, ``(N,)``."""
        return importance_weighted_bound(self.log_weights, x, samples)

    def loss(self, x: Tensor) -> Losses:
        """The negative ELBO with one exact categorical sample and the analytic KL, for evaluation."""
        logits = self.posterior_logits(x)
        return self.negative_elbo(x, categorical_sample(logits), logits)

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """The negative relaxed ELBO at the temperature of ``step``."""
        x = self.check(x)
        temperature = self.temperature(step)
        logits = self.posterior_logits(x)
        losses = self.negative_elbo(x, gumbel_softmax(logits, temperature, self.hard), logits)
        yield "model", {**losses, "temperature": torch.tensor(temperature, device=x.device)}

    def negative_elbo(self, x: Tensor, z: Tensor, logits: Tensor) -> Losses:
        """``−log p(x | z) + KL`` averaged over the batch, for samples ``z`` of the posterior of ``logits``."""
        reconstruction = -self.decoder_log_prob(x, z).mean()
        kl = self.kl(logits).mean()
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl,
                "bpd": (reconstruction + kl) / (x[0].numel() * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """``n`` images: ``z`` from the uniform prior, then the decoder's draw, or its mean rounded to the nearest
        value with ``decoder_noise=False``."""
        codes = torch.randint(self.categories, (n, self.latents), device=self.device).to(self.dtype)
        return self.decode(codes, decoder_noise)

    def latent_codes(self, x: Tensor) -> Tensor:
        """The most probable class of each latent, ``(N, latents)``."""
        with torch.no_grad():
            return self.posterior_logits(x).argmax(dim=-1).to(x.dtype)

    @torch.no_grad()
    def decode(self, codes: Tensor, decoder_noise: bool = True) -> Tensor:
        """Images from the classes ``(N, latents)`` of the latents, as :meth:`latent_codes` gives them: a draw of
        ``p(x | z)``, or its mean rounded to the nearest value; ``ValueError`` for anything but classes
        ``0..categories-1`` (an interpolation between two codes is not a code)."""
        codes = check_data(codes.to(self.device, self.dtype), (self.latents,), self.categories, name="codes")
        params = self.decoder(F.one_hot(codes.long(), self.categories).to(self.dtype).flatten(1))
        return self.head.sample(params) if decoder_noise else self.head.mean(params).round()

    @torch.no_grad()
    def latent_diagnostics(self, x: Tensor) -> dict:
        """The average ``KL(q(z_l | x) ‖ uniform)`` of each latent on the data ``x``, and the collapsed latents,
        those whose posterior is the prior for every ``x``
        (:func:`~dgm.models.latent.diagnostics.posterior_collapse`)."""
        kl = torch.cat([self.kl_per_latent(self.posterior_logits(self.check(batch)))
                        for batch in x.split(DIAGNOSTIC_BATCH)]).mean(dim=0)
        return {"kl_per_latent": kl.tolist(), "kl": kl.sum().item(), **posterior_collapse(kl)}
