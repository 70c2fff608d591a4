"""Decoders ``p(x | z)`` of VAEs: a network of ``z`` and a distribution of the data given its output.

- :class:`FactorizedDecoder`: ``p(x | z) = Π_i p(x_i | θ_i(z))``, the entries independent given ``z`` (Kingma &
  Welling, 2014, appendix C), with ``θ = network(z)`` and a head of :mod:`dgm.distributions` for the distribution
  of an entry: :class:`~dgm.distributions.BernoulliPixels` (binary data), :class:`~dgm.distributions.CategoricalPixels`
  (a softmax over the levels), :class:`~dgm.distributions.DiscretizedLogisticMixture` (PixelCNN++'s likelihood) or
  :class:`~dgm.distributions.GaussianPixels` (homework 2's ``get_normal_nll``: a Gaussian of learned or fixed
  variance, discretized to the bins of discrete data).
- :class:`PixelCNNDecoder`: an autoregressive ``p(x | z) = Π_i p(x_i | x_<i, z)``, dgm's Gated PixelCNN conditioned on
  the vector ``z`` (PixelVAE, Gulrajani et al., 2017, "PixelVAE: A Latent Variable Model for Natural Images", §2;
  homework 4, task 2). The decoder can model local structure alone, which tempts the model to ignore ``z``; free
  bits (:mod:`dgm.models.latent.vae`) keep the latent in use.

Both lay data out as ``(N, C, *positions)``: images as they are, vectors ``(N, D)`` as ``(N, 1, D)``, so that one
head serves both. ``log_prob(x, z)`` is ``(N,)``; ``sample(z)`` a draw of ``x``; ``mean(z)`` the expected value of
every entry (a picture of the decoder without its noise), where the decoder has one.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.distributions import decoder_head
from dgm.models.autoregressive.gated_pixelcnn import GatedPixelCNN
from dgm.models.latent.networks import conv_decoder, mlp_decoder


def as_entries(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Data ``(N, *shape)`` in the layout of a head, ``(N, C, *positions)``: vectors get a channel axis."""
    return x.unsqueeze(1) if len(shape) == 1 else x


def as_data(entries: Tensor, shape: Sequence[int]) -> Tensor:
    """The inverse of :func:`as_entries`."""
    return entries.squeeze(1) if len(shape) == 1 else entries


class FactorizedDecoder(nn.Module):
    """``p(x | z) = Π_i head(θ_i(z))``: ``network`` maps ``(N, latent)`` to ``(N, head.param_channels,
    *positions)``."""

    def __init__(self, network: nn.Module, head, shape: Sequence[int]):
        super().__init__()
        self.network, self.head, self.shape = network, head, tuple(shape)

    def log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        return self.head.log_prob(self.network(z), as_entries(x, self.shape))

    def sample(self, z: Tensor) -> Tensor:
        return as_data(self.head.sample(self.network(z)), self.shape)

    def mean(self, z: Tensor) -> Tensor:
        return as_data(self.head.mean(self.network(z)), self.shape)


def factorized_decoder(shape: Sequence[int], levels: int | None, latent_dim: int, kind: str, output: str | None,
                       scale: str, components: int, hidden: Sequence[int], widths: Sequence[int]) -> FactorizedDecoder:
    """``p(x | z)`` by the network ``kind`` (``"mlp"`` of widths ``hidden``, in the decoder's order, or ``"conv"``
    of ``widths``) to the parameters of the head that ``output`` names (``scale``: ``"learned"`` or ``"fixed"``
    σ of a Gaussian head; ``components`` of a logistic mixture)."""
    if scale not in ("learned", "fixed"):
        raise ValueError(f"decoder_scale must be 'learned' or 'fixed' (sigma = 1), got {scale!r}")
    channels, positions = (shape[0], tuple(shape[1:])) if len(shape) == 3 else (1, tuple(shape))
    head = decoder_head(channels, levels, output, components, learned_scale=scale == "learned")
    if kind == "conv":
        network = conv_decoder(latent_dim, widths, head.param_channels, positions)
    else:
        network = mlp_decoder(latent_dim, list(hidden), (head.param_channels, *positions))
    return FactorizedDecoder(network, head, shape)


def decoded(decoder: nn.Module, codes: Tensor, levels: int | None, decoder_noise: bool) -> Tensor:
    """A draw of ``p(x | z)`` for latents ``codes``, or the decoder's mean (rounded to the nearest value for
    discrete data, so that it follows the data convention)."""
    if decoder_noise:
        return decoder.sample(codes)
    mean = decoder.mean(codes)
    return mean if levels is None else mean.round()


class PixelCNNDecoder(nn.Module):
    """``p(x | z)`` by a Gated PixelCNN on images ``shape`` with ``levels`` values, every layer conditioned on ``z``
    ``(N, latent_dim)`` (:class:`dgm.nn.conditioning.ConditionBias`); ``filters``, ``layers`` and ``kernel_size`` as
    in :class:`~dgm.models.autoregressive.gated_pixelcnn.GatedPixelCNN` (homework 4: 32 filters, 3 layers,
    kernel 7)."""

    def __init__(self, shape: Sequence[int], levels: int, latent_dim: int, filters: int = 32, layers: int = 3,
                 kernel_size: int = 7):
        super().__init__()
        self.pixelcnn = GatedPixelCNN(shape, levels, filters=filters, layers=layers, kernel_size=kernel_size,
                                      condition_shape=(latent_dim,))

    def log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        return self.pixelcnn.log_prob(x, condition=z)

    @torch.no_grad()
    def sample(self, z: Tensor) -> Tensor:
        return self.pixelcnn.sample(len(z), condition=z)

    def mean(self, z: Tensor) -> Tensor:
        raise ValueError("an autoregressive decoder has no closed-form mean: draw samples instead")
