"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017, "Neural Discrete Representation Learning") and VQ-VAE-2
(Razavi, van den Oord & Vinyals, 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2"), lecture 8.

**Autoencoder** (VQ-VAE §3.1). A convolutional encoder (:class:`~dgm.models.latent.networks.DownsamplingConvNet`
and a 1x1 convolution to the code dimension ``D``) maps an image to a feature map ``z_e(x)``; a vector quantizer
(:mod:`dgm.models.latent.quantize`) replaces each vector by its nearest of ``K`` codes, giving the code map ``k(x)``
and ``z_q(x)``; the decoder (:class:`~dgm.models.latent.networks.UpsamplingConvNet`) maps ``z_q`` to the parameters
of a pixel distribution (:func:`dgm.distributions.decoder_head`: a categorical or a discretized logistic mixture,
Bernoulli for binary images), so ``−log p(x | z_q)`` is a reconstruction negative log-likelihood in nats. The
autoencoder minimises eq. 3: ``−log p(x | z_q) + ‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖²`` (the codebook term is replaced
by moving averages with ``ema=True``).

**Two levels** (``hierarchy=2``, VQ-VAE-2 §3.1, Fig. 2a and Algorithm 1). The encoder's features are encoded once
more, at half their resolution, and quantized into a top code map. The top codes are decoded back to the bottom
resolution and concatenated with the features before the bottom quantizer, so the bottom codes hold what the top
codes miss; the decoder reads the bottom code vectors and the top ones, upsampled (nearest neighbour).

**Prior** (VQ-VAE §3.3, VQ-VAE-2 §3.2). The code maps are modelled by a Gated PixelCNN over ``K`` values
(:class:`~dgm.models.autoregressive.gated_pixelcnn.GatedPixelCNN`); with two levels a top prior ``p(k_top)`` and a
bottom prior ``p(k_bottom | k_top)`` conditioned on the top code vectors upsampled to the bottom map (a feature-map
condition, van den Oord et al., 2016b, eq. 5). Sampling draws the codes from the prior and then the image from the
decoder (or its mean, ``decoder_noise=False``).

**Two stages on one step clock.** The paper trains the autoencoder first and then fits the prior to the codes of
the training set. Here both happen in one run: :meth:`optimizer_groups` gives an ``"autoencoder"`` and a ``"prior"``
group, and :meth:`training_step` yields an autoencoder update (eq. 3) while the run's step ``t < autoencoder_steps``,
then a prior update only: the negative log-likelihood of the codes of the batch under the prior, the codes computed
without gradient from the then frozen autoencoder. The codebook's moving averages and restarts change it only in the
autoencoder stage (:meth:`~dgm.models.latent.quantize.VectorQuantizer.update`), so the prior's targets stay fixed.

**Likelihood.** The posterior ``q(k | x)`` puts all its mass on ``k(x)``, so its entropy is zero and
``KL(q ‖ p) = −log p(k(x))``: the evidence lower bound is

    log p(x) ≥ ELBO(x) = log p(x | z_q(x)) + log p(k(x)),

which :meth:`log_prob` returns (``likelihood = "lower_bound"``). It is one term of ``log Σ_k p(x | e_k) p(k)``, so a
bound of the model's exact marginal. :meth:`loss` reports its negative mean as ``"loss"``, with its two parts, the
commitment loss, the code perplexity and the reconstruction's bits per dimension.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import GenerativeModel, Losses, OptimizerGroup, Update, check_data, check_integer, check_levels
from dgm.distributions import decoder_head
from dgm.models.autoregressive.gated_pixelcnn import GatedPixelCNN
from dgm.models.latent.networks import (DownsamplingConvNet, UpsamplingConvNet, check_widths, downsampled_size,
                                       encoder_input)
from dgm.models.latent.quantize import Quantized, VectorQuantizer, perplexity
from dgm.registry import register_model

DIAGNOSTIC_BATCH = 500  # images per pass of the encoder in latent_diagnostics


@register_model("vqvae", "VQ-VAE and VQ-VAE-2 (hierarchy=2): vector-quantized codes (EMA codebook, restarts), Gated "
                         "PixelCNN prior fitted after the autoencoder in the same run; bound log p(x|z_q) + log p(z_q)")
class VQVAE(GenerativeModel):
    """A VQ-VAE of images ``(C, H, W)`` with ``levels`` values: ``codes`` codes of dimension ``code_dim``, encoder and
    decoder of ``widths`` with ``residual_blocks`` residual blocks, ``hierarchy`` levels of code maps, Gated PixelCNN
    priors of ``prior_filters`` channels, ``prior_layers`` layers and ``prior_kernel`` kernels; see the module
    docstring for the rest."""

    likelihood = "lower_bound"

    def __init__(self, shape: Sequence[int], levels: int = 2, codes: int = 64, code_dim: int = 16,
                 widths: Sequence[int] = (32, 64, 64), residual_blocks: int = 2, hierarchy: int = 1,
                 ema: bool = True, decay: float = 0.99, commitment: float = 0.25, restart_after: int | None = 20,
                 output: str | None = None, components: int = 5, prior_filters: int = 64, prior_layers: int = 5,
                 prior_kernel: int = 5, autoencoder_steps: int = 2000):
        super().__init__()
        self.shape = tuple(shape)
        if len(self.shape) != 3:
            raise ValueError(f"VQ-VAE models images (C, H, W), got shape {self.shape}")
        self.levels = check_levels(levels, "VQ-VAE")
        if hierarchy not in (1, 2):
            raise ValueError(f"hierarchy must be 1 (VQ-VAE) or 2 (VQ-VAE-2), got {hierarchy!r}")
        self.hierarchy = hierarchy
        self.autoencoder_steps = check_integer(autoencoder_steps, "autoencoder_steps", 0)
        widths, channels = check_widths(widths), self.shape[0]
        features = widths[-1]
        self.head = decoder_head(channels, self.levels, output, components)

        self.encoder = DownsamplingConvNet(channels, widths, residual_blocks)
        self.code_size = tuple(downsampled_size(size, self.encoder.steps) for size in self.shape[1:])
        map_sizes = [self.code_size]
        if hierarchy == 2:
            map_sizes.insert(0, tuple(downsampled_size(size, 1) for size in self.code_size))
            self.top_encoder = nn.Sequential(DownsamplingConvNet(features, [features, features], residual_blocks),
                                             nn.Conv2d(features, code_dim, 1))
            self.top_decoder = UpsamplingConvNet(code_dim, [features, features], code_dim, self.code_size,
                                                 residual_blocks)
        self.to_code = nn.Conv2d(features + (code_dim if hierarchy == 2 else 0), code_dim, 1)
        self.quantizers = nn.ModuleList(VectorQuantizer(codes, code_dim, ema, decay, commitment, restart_after)
                                        for _ in map_sizes)
        self.decoder = UpsamplingConvNet(hierarchy * code_dim, widths, self.head.param_channels, self.shape[1:],
                                         residual_blocks)
        self.priors = nn.ModuleList(
            GatedPixelCNN((1, *size), codes, prior_filters, prior_layers, prior_kernel,
                          condition_shape=None if level == 0 else (code_dim, *size))
            for level, size in enumerate(map_sizes))

    # -- the autoencoder ------------------------------------------------------------------------------------------
    def quantize(self, x: Tensor) -> list[Quantized]:
        """The quantized code maps of ``x``, the coarsest first (one, or the top and the bottom one)."""
        h = self.encoder(encoder_input(x, self.levels))
        if self.hierarchy == 1:
            return [self.quantizers[0](self.to_code(h))]
        top = self.quantizers[0](self.top_encoder(h))
        bottom = self.quantizers[1](self.to_code(torch.cat([h, self.top_decoder(top.z_q)], dim=1)))
        return [top, bottom]

    def decoder_params(self, code_vectors: list[Tensor]) -> Tensor:
        """The pixel distribution's parameters ``(N, P, H, W)`` from the code vectors of each level, the coarsest
        first, each upsampled to the bottom map."""
        return self.decoder(torch.cat([self.upsampled(z) for z in code_vectors], dim=1))

    def upsampled(self, z: Tensor) -> Tensor:
        """A map ``(N, D, h, w)`` at the bottom map's size, by repeating its cells (nearest neighbour)."""
        return F.interpolate(z, size=self.code_size, mode="nearest")

    def reconstruction_nll(self, x: Tensor, quantized: list[Quantized]) -> Tensor:
        """``−log p(x | z_q)`` of each example in nats, ``(N,)``."""
        return -self.head.log_prob(self.decoder_params([level.z_q for level in quantized]), x)

    # -- the prior ------------------------------------------------------------------------------------------------
    @staticmethod
    def code_maps(quantized: list[Quantized]) -> list[Tensor]:
        """The code indices of each level as one-channel images ``(N, 1, h, w)`` of values ``0..K-1``, the data of
        the priors."""
        return [level.codes.unsqueeze(1).to(level.z_e.dtype) for level in quantized]

    def prior_condition(self, top_codes: Tensor) -> Tensor:
        """What the bottom prior is conditioned on: the top code vectors, upsampled to the bottom map."""
        return self.upsampled(self.quantizers[0].embed(top_codes[:, 0]).detach())

    def prior_log_prob(self, codes: list[Tensor]) -> Tensor:
        """``log p(k)`` of the code maps (the coarsest first) in nats, ``(N,)``."""
        log_p = self.priors[0].log_prob(codes[0])
        if self.hierarchy == 2:
            log_p = log_p + self.priors[1].log_prob(codes[1], condition=self.prior_condition(codes[0]))
        return log_p

    # -- the protocol ---------------------------------------------------------------------------------------------
    def log_prob(self, x: Tensor) -> Tensor:
        """The evidence lower bound ``log p(x | z_q(x)) + log p(k(x))`` of each example in nats, ``(N,)``."""
        quantized = self.quantize(x)
        return -self.reconstruction_nll(x, quantized) + self.prior_log_prob(self.code_maps(quantized))

    def loss(self, x: Tensor) -> Losses:
        """The negative bound (``"loss"``) and its parts, for evaluation; the training objectives are those of
        :meth:`training_step`."""
        quantized = self.quantize(x)
        reconstruction = self.reconstruction_nll(x, quantized).mean()
        prior_nll = -self.prior_log_prob(self.code_maps(quantized)).mean()
        return {"loss": reconstruction + prior_nll, "reconstruction": reconstruction, "prior_nll": prior_nll,
                "commitment": sum(level.commitment_loss for level in quantized).mean(),
                "bpd": reconstruction / (x[0].numel() * math.log(2)), **self.perplexities(quantized)}

    def perplexities(self, quantized: list[Quantized]) -> Losses:
        """The code perplexity of the bottom (or only) map as ``"perplexity"``, the top map's as
        ``"perplexity_top"``."""
        names = ["perplexity_top", "perplexity"][-len(quantized):]
        return {name: level.perplexity for name, level in zip(names, quantized)}

    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """``n`` images: code maps from the prior (the top one first), then the decoder's draw, or its mean rounded
        to the nearest value with ``decoder_noise=False``."""
        codes = [self.priors[0].sample(n)]
        if self.hierarchy == 2:
            codes.append(self.priors[1].sample(n, condition=self.prior_condition(codes[0])))
        return self.generate(codes, decoder_noise)

    def generate(self, codes: list[Tensor], decoder_noise: bool) -> Tensor:
        """Images from code maps ``(N, 1, h, w)`` of each level, the coarsest first: a draw of ``p(x | z_q)``, or
        its mean rounded to the nearest value."""
        vectors = [quantizer.embed(level[:, 0]) for quantizer, level in zip(self.quantizers, codes)]
        params = self.decoder_params(vectors)
        return self.head.sample(params) if decoder_noise else self.head.mean(params).round()

    def latent_codes(self, x: Tensor) -> Tensor:
        """The code indices ``(N, hierarchy, h, w)`` at the bottom map's size: the top codes (repeated over the
        2x2 cells they cover) before the bottom ones."""
        with torch.no_grad():
            codes = self.code_maps(self.quantize(x))
        return torch.cat([self.upsampled(level) for level in codes], dim=1)

    @torch.no_grad()
    def decode(self, codes: Tensor, decoder_noise: bool = True) -> Tensor:
        """Images from code indices laid out as :meth:`latent_codes` gives them (the top codes are read at the even
        rows and columns, where the nearest-neighbour upsampling put them); ``ValueError`` for anything but
        indices ``0..K-1`` (an interpolation between two code maps is not a code map)."""
        codes = check_data(codes.to(self.device, self.dtype), (self.hierarchy, *self.code_size),
                           self.quantizers[0].codes, name="codes")
        levels = [codes[:, :1, ::2, ::2], codes[:, 1:]] if self.hierarchy == 2 else [codes]
        return self.generate(levels, decoder_noise)

    @torch.no_grad()
    def latent_diagnostics(self, x: Tensor) -> dict:
        """How many of the ``K`` codes the data ``x`` use, and the perplexity of their usage, on each map."""
        codes = [torch.cat(level) for level in zip(*(self.code_maps(self.quantize(self.check(batch)))
                                                     for batch in x.split(DIAGNOSTIC_BATCH)))]
        names = ["top", "bottom"] if self.hierarchy == 2 else ["codes"]
        diagnostics: dict = {"codebook_size": self.quantizers[0].codes}
        for name, level in zip(names, codes):
            usage = F.one_hot(level.long().flatten(), self.quantizers[0].codes).double()
            diagnostics[f"{name}_used"] = int((usage.sum(dim=0) > 0).sum())
            diagnostics[f"{name}_perplexity"] = perplexity(usage).item()
        return diagnostics

    # -- training: two stages on the step clock -------------------------------------------------------------------
    def autoencoder_parameters(self) -> list[nn.Parameter]:
        prior = {id(parameter) for parameter in self.priors.parameters()}
        return [parameter for parameter in self.parameters() if id(parameter) not in prior]

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("autoencoder", self.autoencoder_parameters()),
                OptimizerGroup("prior", list(self.priors.parameters()))]

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """An autoencoder update (eq. 3, then the codebooks' moving averages and restarts) while
        ``step < autoencoder_steps``, a prior update on the codes of ``x`` afterwards."""
        x = self.check(x)
        if step < self.autoencoder_steps:
            quantized = self.quantize(x)
            losses = self.autoencoder_losses(x, quantized)
            for quantizer, level in zip(self.quantizers, quantized):
                quantizer.update(level)
            yield "autoencoder", losses
        else:
            with torch.no_grad():
                codes = self.code_maps(self.quantize(x))
            prior_nll = -self.prior_log_prob(codes).mean()
            yield "prior", {"loss": prior_nll, "prior_nll": prior_nll}

    def autoencoder_losses(self, x: Tensor, quantized: list[Quantized]) -> Losses:
        """Eq. 3 of VQ-VAE, averaged over the batch: reconstruction NLL + codebook loss + commitment loss."""
        reconstruction = self.reconstruction_nll(x, quantized).mean()
        codebook = sum(level.codebook_loss for level in quantized).mean()
        commitment = sum(level.commitment_loss for level in quantized).mean()
        return {"loss": reconstruction + codebook + commitment, "reconstruction": reconstruction,
                "codebook": codebook, "commitment": commitment,
                "bpd": reconstruction / (x[0].numel() * math.log(2)), **self.perplexities(quantized)}
