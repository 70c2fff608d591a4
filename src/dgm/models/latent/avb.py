"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger, 2017, "Adversarial Variational Bayes: Unifying
Variational Autoencoders and Generative Adversarial Networks"), lecture 9.

**Model.** A VAE's generative model, ``z ~ N(0, I)`` and a decoder ``p(x | z)`` (the VAE's factorized decoders,
:mod:`dgm.models.latent.decoders`), with an *implicit* posterior: a network of the data and of noise (§3,
Algorithm 1),

    z = f(x, ε),    ε ~ N(0, I),

which can draw from a posterior of any shape but has no density ``q(z | x)`` to put in the ELBO's KL term.

**The discriminator** ``T(x, z)`` learns that term. It is trained by the logistic loss to tell pairs ``(x, z)`` with
``z ~ q(z | x)`` from pairs with ``z ~ p(z)`` (eq. 3, here minimised):

    L_T = E_x E_q[softplus(−T(x, z))] + E_x E_p[softplus(T(x, z))],

``2 log 2`` where ``T ≡ 0``. Its optimum is the log density ratio (Proposition 1)

    T*(x, z) = log q(z | x) − log p(z),

so ``E_q[T*] = KL(q(z | x) ‖ p(z))`` and the ELBO becomes ``E_q[log p(x | z) − T*(x, z)]``: the encoder and the
decoder maximise it with ``T`` in place of ``T*`` (the objective of §3.1 that follows Proposition 1). ``T*`` depends
on the encoder's parameters too, but that dependence has no gradient on average (Proposition 2:
``E_q[∇_φ T*(x, z)] = 0``), so the model's gradient flows through the drawn ``z`` only, with ``T`` held fixed.

**Adaptive contrast** (§4). Where ``q(z | x)`` is far from ``p(z)`` the logistic loss saturates: ``T`` tells the
two apart long before it reaches ``T*``, and ``E_q[T]`` falls far short of the KL (measured on a Gaussian ``q`` of
known KL, ``T`` trained alone for 2000 steps: 9.7 nats for a KL of 23.5 in 8 dimensions, 17.8 for 161 in 32).
With ``contrast_samples = K ≥ 2`` the contrast is instead ``r(z | x) = N(μ(x), diag σ(x)²)``, the mean and
standard deviation of ``K`` further draws of ``q(z | x)`` (held fixed: no gradient flows through them), and the
ELBO is split as

    ELBO(x) = −KL(q(z | x) ‖ r(z | x)) + E_q[log p(x | z) + log p(z) − log r(z | x)],

the second term in closed form for each draw, the first learnt by ``T``, which now tells the standardized draws
``z̃ = (z − μ(x)) / σ(x)`` from ``N(0, I)``: a contrast ``T`` can estimate where ``q`` is near Gaussian.
``K = 0`` is the contrast with the prior itself (``μ = 0``, ``σ = 1``, so ``z̃ = z`` and ``r = p``), Algorithm 1 as
it stands. Either way ``kl_estimate = E_q[T(x, z̃) + log r(z | x) − log p(z)]``. On the Gaussian ``q`` above, with
``K = 16``, it falls short by 0.6 and 2.4 nats (about ``KL(q ‖ r) ≈ d / K``, the cost of moments from ``K`` draws).
``r`` is diagonal, as in the paper: a posterior whose latents are correlated is still far from it, and ``T``
saturates again (an MLP encoder on MNIST learns such a posterior: the Gaussian part of its ``KL(q ‖ r)``, from its
correlations alone, was 24 nats per image after a minute of training, while ``T`` estimated 5).

**Training** (:meth:`training_step`, Algorithm 1 with its two updates in turn): one draw ``z = f(x, ε)`` per
example (and the ``K`` draws of the contrast), then an update of ``T`` (optimizer group ``"discriminator"``) on
``L_T``, then an update of the encoder and decoder (group ``"model"``) on the negative ELBO estimate
``E_q[T(x, z̃) + log r(z | x) − log p(z) − log p(x | z)]`` with the updated ``T``'s parameters held fixed. Each loss
reaches its own group's parameters only.

**Evaluation.** ``E_q[log p(x | z)] − kl_estimate`` is an estimate of the ELBO, exact only where ``T = T*``,
neither a bound nor an estimate with a known error (``T`` falls short of ``T*`` where it saturates): the model has no
likelihood (``likelihood = None``), and :meth:`loss` logs ``elbo_estimate``, its ``reconstruction`` term
``−E_q log p(x | z)`` and ``kl_estimate``, with the discriminator's loss ``L_T`` beside them. :meth:`sample` draws
``z ~ N(0, I)`` and decodes it; :meth:`latent_codes` is ``f(x, 0)``, the encoder at the mode of its noise
(deterministic, so that interpolations and latent pictures are reproducible; it is not the posterior mean).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from dgm.core import GenerativeModel, Losses, OptimizerGroup, Update, check_integer, check_levels
from dgm.distributions import StandardNormal
from dgm.distributions.functional import normal_log_density
from dgm.models.latent.decoders import FactorizedDecoder, decoded, factorized_decoder
from dgm.models.latent.networks import check_widths, conv_encoder, encoder_input, mlp_encoder
from dgm.models.latent.posteriors import POSTERIOR_LOG_SCALE_RANGE
from dgm.registry import register_model

NETWORKS = ("mlp", "conv")
Contrast = tuple[Tensor, Tensor]  # the mean and log-scale of r(z | x), each (N, latent_dim) or scalars


class JointNetwork(nn.Module):
    """A network of data and a vector: the implicit encoder ``f(x, ε)`` (``v = ε``) and the discriminator
    ``T(x, z)`` (``v = z``). The ``trunk`` maps the data to ``features`` numbers ``h(x)``, followed by one hidden
    layer of ``hidden`` ReLUs on ``[h(x), v]`` and a linear layer to ``out`` numbers:

        head(ReLU(A h(x) + B v + c)).

    The hidden layer's product with the concatenation is written as its two blocks ``A h(x) + B v``, so that ``v``
    may carry leading sample axes, ``(..., N, dim)``: ``A h(x)`` is computed once for the ``N`` inputs and shared by
    all their samples (the draws of the adaptive contrast)."""

    def __init__(self, trunk: nn.Module, features: int, dim: int, hidden: int, out: int):
        super().__init__()
        self.trunk = trunk
        self.from_features, self.from_v = nn.Linear(features, hidden), nn.Linear(dim, hidden, bias=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, inputs: Tensor, v: Tensor) -> Tensor:
        return self.head(self.from_features(self.trunk(inputs)) + self.from_v(v))


def standardize(z: Tensor, contrast: Contrast) -> Tensor:
    """``z̃ = (z − μ) / σ`` for the contrast ``r = N(μ, diag σ²)`` (§4)."""
    loc, log_scale = contrast
    return (z - loc) * torch.exp(-log_scale)


def logistic_loss(t_posterior: Tensor, t_prior: Tensor) -> Tensor:
    """The discriminator's loss, eq. 3 negated: ``mean softplus(−T(x, z_q)) + mean softplus(T(x, z_p))``, the
    cross-entropy of ``σ(T)`` as the probability that ``z`` came from the posterior."""
    return F.softplus(-t_posterior).mean() + F.softplus(t_prior).mean()


@register_model("avb", "Adversarial Variational Bayes: implicit posterior z = f(x, eps), a discriminator T(x, z) "
                       "that estimates the KL; ELBO estimate only, no likelihood")
class AVB(GenerativeModel):
    """AVB for data of ``shape`` (vectors ``(D,)`` or images ``(C, H, W)``) with ``levels`` values (``None``:
    continuous).

    ``encoder`` (which also reads ``x`` for the discriminator) and ``decoder`` are ``"mlp"`` (widths ``hidden``,
    mirrored in the decoder) or ``"conv"`` (``widths``, :mod:`dgm.models.latent.networks`); both trunks end in
    ``hidden[-1]`` features, to which the encoder adds ``noise_dim`` noise entries and the discriminator the latent,
    each followed by one hidden layer of ``hidden[-1]`` units. ``output``, ``decoder_scale`` and ``components``
    choose the decoder's distribution as for the VAE (:func:`dgm.distributions.decoder_head`). ``contrast_samples``
    ``K ≥ 2`` turns on the adaptive contrast with ``K`` draws (``0``: the prior, see the module docstring).
    """

    likelihood = None

    def __init__(self, shape: Sequence[int], levels: int | None = None, latent_dim: int = 16, noise_dim: int = 16,
                 encoder: str = "mlp", decoder: str = "mlp", hidden: Sequence[int] = (512, 256),
                 widths: Sequence[int] = (32, 32, 64), output: str | None = None, decoder_scale: str = "learned",
                 components: int = 5, contrast_samples: int = 0):
        super().__init__()
        self.shape = tuple(shape)
        self.levels = check_levels(levels, "AVB", allow_continuous=True)
        self.latent_dim = check_integer(latent_dim, "latent_dim", 1)
        self.noise_dim = check_integer(noise_dim, "noise_dim", 1)
        if check_integer(contrast_samples, "contrast_samples", 0) == 1:
            raise ValueError("contrast_samples must be 0 (contrast with the prior) or at least 2 (the adaptive "
                             "contrast needs a standard deviation), got 1")
        self.contrast_samples = contrast_samples
        self.hidden, self.widths = check_widths(hidden, "hidden"), widths
        features = self.hidden[-1]
        self.encoder = JointNetwork(self._trunk(encoder, "encoder"), features, noise_dim, features, latent_dim)
        self.discriminator = JointNetwork(self._trunk(encoder, "encoder"), features, latent_dim, features, 1)
        self.decoder = self._decoder(decoder, output, decoder_scale, components)
        self.noise = StandardNormal((noise_dim,))
        self.prior = StandardNormal((latent_dim,))

    # -- construction ---------------------------------------------------------------------------------------------
    def _check_network(self, kind: str, role: str) -> None:
        if kind not in NETWORKS:
            raise ValueError(f"{role} must be one of {', '.join(NETWORKS)}, got {kind!r}")
        if kind == "conv" and len(self.shape) != 3:
            raise ValueError(f"a convolutional {role} needs images (C, H, W), got shape {self.shape}")

    def _trunk(self, kind: str, role: str) -> nn.Sequential:
        """Data ``(N, *shape)`` → features ``(N, hidden[-1])``, ending in a ReLU."""
        self._check_network(kind, role)
        features = self.hidden[-1]
        network = conv_encoder(self.shape, self.widths, features) if kind == "conv" else \
            mlp_encoder(self.shape, self.hidden[:-1], features)
        return nn.Sequential(network, nn.ReLU())

    def _decoder(self, kind: str, output: str | None, scale: str, components: int) -> FactorizedDecoder:
        """``p(x | z)``: the network ``kind`` to the parameters of the head that ``output`` names."""
        self._check_network(kind, "decoder")
        return factorized_decoder(self.shape, self.levels, self.latent_dim, kind, output, scale, components,
                                  self.hidden[::-1], self.widths)

    # -- the parts at work ----------------------------------------------------------------------------------------
    def draw(self, inputs: Tensor, samples: int = 1) -> Tensor:
        """``samples`` draws ``z = f(x, ε)`` for each of the encoder inputs ``(N, *shape)``,
        ``(samples, N, latent_dim)``."""
        return self.encoder(inputs, self.noise.sample((samples, len(inputs))))

    def posterior_draw(self, inputs: Tensor) -> tuple[Tensor, Contrast]:
        """One draw ``z ~ q(z | x)`` per input ``(N, latent_dim)`` and the contrast of ``T`` for each."""
        draws = self.draw(inputs, 1 + self.contrast_samples)
        return draws[0], self.contrast(draws[1:])

    def contrast(self, draws: Tensor) -> Contrast:
        """The mean and log-scale of ``r(z | x)``: those of the draws ``(K, N, latent_dim)`` of ``q(z | x)``
        (adaptive contrast, held fixed), or the prior's ``0`` and ``0`` where ``K = 0``."""
        if not len(draws):
            zero = draws.new_zeros(())
            return zero, zero
        draws = draws.detach()
        return draws.mean(dim=0), draws.std(dim=0).log().clamp(*POSTERIOR_LOG_SCALE_RANGE)

    def discriminator_loss(self, inputs: Tensor, z_tilde: Tensor) -> Losses:
        """``L_T`` for standardized posterior draws ``z̃`` of encoder inputs ``inputs`` against as many draws of
        ``N(0, I)``; ``accuracy`` is the fraction of the pairs that ``T`` classifies right (``T > 0``: from the
        posterior)."""
        pairs = torch.stack([z_tilde, self.prior.sample(len(z_tilde))])  # N(0, I): the prior or the standardized r
        t_posterior, t_contrast = self.discriminator(inputs, pairs).squeeze(-1)
        accuracy = ((t_posterior > 0).float().mean() + (t_contrast < 0).float().mean()) / 2
        return {"loss": logistic_loss(t_posterior, t_contrast), "accuracy": accuracy.detach()}

    def elbo_estimate(self, x: Tensor, inputs: Tensor, z: Tensor, contrast: Contrast, discriminator) -> Losses:
        """``E_q[log p(x | z) − T(x, z̃) − log r(z | x) + log p(z)]`` for posterior draws ``z`` of ``x``, its
        reconstruction and KL terms, and ``loss``, its negative; ``discriminator`` computes ``T`` (the module, or a
        view of it with fixed parameters)."""
        reconstruction = -self.decoder.log_prob(x, z).mean()
        log_contrast_ratio = normal_log_density(z, *contrast).sum(dim=-1) - self.prior.log_prob(z)
        kl_estimate = (discriminator(inputs, standardize(z, contrast)).squeeze(-1) + log_contrast_ratio).mean()
        return {"loss": reconstruction + kl_estimate, "elbo_estimate": -(reconstruction + kl_estimate).detach(),
                "reconstruction": reconstruction.detach(), "kl_estimate": kl_estimate.detach()}

    def fixed_discriminator(self, inputs: Tensor, z: Tensor) -> Tensor:
        """``T(x, z)`` with its parameters detached: a gradient reaches ``z`` but not ``T``."""
        parameters = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, parameters, (inputs, z))

    # -- the protocol ---------------------------------------------------------------------------------------------
    def optimizer_groups(self) -> list[OptimizerGroup]:
        """``"model"``: the encoder and the decoder; ``"discriminator"``: ``T``."""
        model = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [OptimizerGroup("model", model), OptimizerGroup("discriminator", list(self.discriminator.parameters()))]

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """One draw ``z = f(x, ε)`` and its contrast; an update of ``T`` on ``L_T``, then of the encoder and decoder
        on the negative ELBO estimate with the updated ``T`` fixed (see the module docstring)."""
        x = self.check(x)
        inputs = encoder_input(x, self.levels)
        z, contrast = self.posterior_draw(inputs)
        yield "discriminator", self.discriminator_loss(inputs, standardize(z, contrast).detach())
        yield "model", self.elbo_estimate(x, inputs, z, contrast, self.fixed_discriminator)

    def loss(self, x: Tensor) -> Losses:
        """For evaluation: the negative ELBO estimate (``loss``), its terms, and the discriminator's loss
        ``discriminator_loss`` on the same draws (``2 log 2`` where ``T`` cannot tell them apart)."""
        inputs = encoder_input(x, self.levels)
        z, contrast = self.posterior_draw(inputs)
        discriminator = self.discriminator_loss(inputs, standardize(z, contrast).detach())
        return {**self.elbo_estimate(x, inputs, z, contrast, self.discriminator),
                "discriminator_loss": discriminator["loss"].detach(),
                "discriminator_accuracy": discriminator["accuracy"]}

    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """``z ~ N(0, I)``, then ``x ~ p(x | z)``, or the decoder's mean with ``decoder_noise=False``."""
        return self.decode(self.prior.sample(n), decoder_noise)

    @torch.no_grad()
    def decode(self, codes: Tensor, decoder_noise: bool = True) -> Tensor:
        """A draw of ``p(x | z)`` for latents ``z`` ``(N, latent_dim)``, or the decoder's mean (rounded to the
        nearest value for discrete data, so that it follows the data convention)."""
        return decoded(self.decoder, codes, self.levels, decoder_noise)

    def latent_codes(self, x: Tensor) -> Tensor:
        """``f(x, 0)`` ``(N, latent_dim)``: the encoder at the mode of its noise (see the module docstring)."""
        return self.encoder(encoder_input(x, self.levels), torch.zeros(len(x), self.noise_dim, device=x.device,
                                                                       dtype=x.dtype))
