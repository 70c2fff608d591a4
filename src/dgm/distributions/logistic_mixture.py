"""The discretized mixture of logistics of PixelCNN++ (Salimans, Karpathy, Chen & Kingma, 2017, §2.1–2.2).

A value ``x ∈ {0, …, L-1}`` is placed on ``[-1, 1]`` as ``x̃ = 2x/(L-1) - 1`` (:mod:`dgm.distributions.codec`), so
neighbouring values lie ``2h`` apart with ``h = 1/(L-1)``. Each value owns the bin ``[x̃ - h, x̃ + h]`` of a mixture
of logistics (eq. 2):

    P(x) = Σ_k π_k [σ((x̃ + h - μ_k)/s_k) - σ((x̃ - h - μ_k)/s_k)],

and the two end bins reach to infinity, as the lecture writes them: the lower CDF is ``σ(-∞) = 0`` at ``x = 0`` and
the upper one ``σ(+∞) = 1`` at ``x = L-1``, so the probabilities of the ``L`` values sum to exactly 1.

**Numerical form.** With ``a = (x̃ + h - μ)/s`` and ``b = (x̃ - h - μ)/s``, the identity

    σ(a) - σ(b) = σ(a) · σ(-b) · (1 - e^{-(a-b)}),    a - b = 2h/s,

gives ``log P = logσ(a) + logσ(-b) + log(1 - e^{-2h/s})``: three terms that are each finite and accurate whatever
the bin's distance from the mean (no difference of two rounded CDFs). At the edges the missing term is 0 (``b = -∞``
drops ``logσ(-b)`` and the last term, ``a = +∞`` drops ``logσ(a)`` and the last term). The paper's code needs the
mid-point approximation ``log P ≈ log pdf(x̃) + log 2h`` for bins whose CDF difference underflows; this form has no
such case, and :func:`log_bin_probability` agrees with the mid-point value where that is accurate (tested).

**Colour (§2.2).** Within a pixel the channels are coupled by a linear dependence of each channel's mean on the
channels before it (R, then G, then B): ``μ_G = μ_G' + α x̃_R``, ``μ_B = μ_B' + β x̃_R + γ x̃_G``, one set of
coefficients (squashed by ``tanh``) per component. The whole pixel's joint probability is one mixture over the
components: ``P(r, g, b) = Σ_k π_k P_k(r) P_k(g | r) P_k(b | r, g)``. A network therefore needs only pixel-level
(not channel-level) causality; :meth:`DiscretizedLogisticMixture.sample` draws the channels in order, the later ones
given the already discretized earlier ones, so samples follow exactly the distribution that ``log_prob`` scores.

Parameters come as one tensor ``(N, P, *positions)`` with ``P = param_channels``: ``K`` mixture logits, then for
each component ``C`` means, ``C`` log-scales and ``C(C-1)/2`` coupling coefficients. Any number of channels,
levels ≥ 2 and positions (images ``(H, W)``, sequences ``(T,)``, none) is accepted. The class is a *head*, the
protocol of :mod:`dgm.models.autoregressive.base`: ``log_prob(params, x)`` is the log-probability of each example,
``(N,)``, the positions being independent given their parameters, and ``sample(params)`` is one draw.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.core import check_integer
from dgm.distributions.codec import half_bin_width, to_interval, to_levels
from dgm.distributions.functional import log1mexp
from dgm.distributions.likelihoods import (BernoulliPixels, CategoricalPixels, GaussianPixels, check_event_shape,
                                           sum_per_example)

LOG_SCALE_MIN = -7.0  # s ≥ e^-7 ≈ 0.0009: sharper than any bin of 8-bit data (h ≈ 0.0039), finite densities
UNIFORM_MARGIN = 1e-5  # logistic samples use u ∈ [margin, 1 - margin], so their logit is finite


def log_bin_probability(x: Tensor, mean: Tensor, log_scale: Tensor, levels: int) -> Tensor:
    """``log P(x)`` of one logistic ``(mean, e^log_scale)`` discretized to ``levels`` values, elementwise.

    ``x`` holds integers ``0..levels-1``; ``mean`` lies on the ``[-1, 1]`` scale of ``x̃``.
    """
    half_bin = half_bin_width(levels)
    inverse_scale = torch.exp(-log_scale)
    centred = to_interval(x, levels) - mean
    upper = (centred + half_bin) * inverse_scale
    lower = (centred - half_bin) * inverse_scale
    is_bottom, is_top = x <= 0, x >= levels - 1
    log_cdf_upper = torch.where(is_top, torch.zeros_like(upper), F.logsigmoid(upper))
    log_survival_lower = torch.where(is_bottom, torch.zeros_like(lower), F.logsigmoid(-lower))
    log_width = torch.where(is_top | is_bottom, torch.zeros_like(upper), log1mexp(2 * half_bin * inverse_scale))
    return log_cdf_upper + log_survival_lower + log_width


class DiscretizedLogisticMixture:
    """A mixture of ``components`` discretized logistics over ``channels`` coupled channels with ``levels`` values.

    The network of a model outputs ``param_channels`` numbers per position; :meth:`log_prob` scores data of shape
    ``(N, channels, *positions)`` and :meth:`sample` draws it, both vectorised over every position.
    """

    def __init__(self, channels: int, levels: int, components: int = 5):
        self.channels = check_integer(channels, "channels", 1)
        self.levels = check_integer(levels, "levels", 2)
        self.components = check_integer(components, "components", 1)
        self.couplings = channels * (channels - 1) // 2

    @property
    def param_channels(self) -> int:
        """Numbers per position: ``K`` logits and, per component, ``C`` means, ``C`` log-scales, ``C(C-1)/2``
        coupling coefficients."""
        return self.components * (1 + 2 * self.channels + self.couplings)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(logits (N, K, *S), means (N, C, K, *S), log_scales (N, C, K, *S), coefficients (N, C(C-1)/2, K, *S))``,
        log-scales clamped below at ``LOG_SCALE_MIN`` and coefficients squashed by ``tanh``."""
        if params.dim() < 2 or params.shape[1] != self.param_channels:
            raise ValueError(f"mixture parameters must have shape (N, {self.param_channels}, *positions), "
                             f"got {tuple(params.shape)}")
        n, _, *positions = params.shape
        k, c = self.components, self.channels
        logits, means, log_scales, coefficients = params.split([k, c * k, c * k, self.couplings * k], dim=1)
        return (logits,
                means.reshape(n, c, k, *positions),
                log_scales.reshape(n, c, k, *positions).clamp(min=LOG_SCALE_MIN),
                torch.tanh(coefficients.reshape(n, self.couplings, k, *positions)))

    def _coupled_means(self, means: Tensor, coefficients: Tensor, scaled: Tensor) -> Tensor:
        """Channel ``c``'s mean plus ``Σ_{j<c} coefficient · x̃_j`` (§2.2); ``scaled`` is ``x̃`` ``(N, C, *S)``."""
        shifted, pair = [means[:, 0]], 0
        for c in range(1, self.channels):
            shift = means[:, c]
            for j in range(c):
                shift = shift + coefficients[:, pair] * scaled[:, j].unsqueeze(1)
                pair += 1
            shifted.append(shift)
        return torch.stack(shifted, dim=1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``log P(x)`` of each example ``(N, C, *positions)``: the sum over positions of the channels' joint
        ``log P(x_pixel)``, shape ``(N,)``."""
        logits, means, log_scales, coefficients = self.split(params)
        check_event_shape(x, torch.Size((params.shape[0], self.channels, *params.shape[2:])))
        means = self._coupled_means(means, coefficients, to_interval(x, self.levels))
        per_channel = log_bin_probability(x.unsqueeze(2), means, log_scales, self.levels)  # (N, C, K, *S)
        per_pixel = torch.logsumexp(F.log_softmax(logits, dim=1) + per_channel.sum(dim=1), dim=1)  # (N, *S)
        return sum_per_example(per_pixel)

    def mean(self, params: Tensor) -> Tensor:
        """``Σ_k π_k μ_k`` of every channel on the scale ``0..levels-1`` (clamped to it), ``(N, C, *positions)``:
        the mean of the continuous mixture, each channel's means taken without their coupling to the earlier
        channels (a picture of a decoder's mean, not an exact moment of the discretized pixel)."""
        logits, means, _, _ = self.split(params)
        mixed = (F.softmax(logits, dim=1).unsqueeze(1) * means).sum(dim=2)
        return ((mixed + 1) * (self.levels - 1) / 2).clamp(0, self.levels - 1)

    def sample(self, params: Tensor) -> Tensor:
        """One draw ``(N, C, *positions)`` per position (global torch generator): a component, then each channel
        in order, discretized before the next channel's mean uses it."""
        logits, means, log_scales, coefficients = self.split(params)
        n, _, *positions = logits.shape
        flat_logits = logits.movedim(1, -1).reshape(-1, self.components)
        component = torch.multinomial(F.softmax(flat_logits, dim=-1), 1).view(n, *positions)
        pick = component.view(n, 1, 1, *positions).expand(n, self.channels, 1, *positions)
        mean, log_scale = means.gather(2, pick).squeeze(2), log_scales.gather(2, pick).squeeze(2)
        if self.couplings:
            pairs = component.view(n, 1, 1, *positions).expand(n, self.couplings, 1, *positions)
            coefficient = coefficients.gather(2, pairs).squeeze(2)
        x = torch.zeros_like(mean)
        pair = 0
        for c in range(self.channels):
            centre = mean[:, c]
            for j in range(c):
                centre = centre + coefficient[:, pair] * to_interval(x[:, j], self.levels)
                pair += 1
            u = torch.rand_like(centre).clamp(UNIFORM_MARGIN, 1 - UNIFORM_MARGIN)
            continuous = centre + torch.exp(log_scale[:, c]) * (torch.log(u) - torch.log1p(-u))
            x[:, c] = to_levels(continuous, self.levels)
        return x


PixelHead = Literal["logistic", "categorical"]


def pixel_head(channels: int, levels: int, output: PixelHead | None, components: int):
    """The distribution of a whole pixel: a categorical for one-channel binary images (or when asked for), else
    the discretized logistic mixture of ``components`` components."""
    if output is None:
        output = "categorical" if channels == 1 and levels == 2 else "logistic"
    if output == "logistic":
        return DiscretizedLogisticMixture(channels, levels, check_integer(components, "components", 1))
    if output == "categorical":
        if channels != 1:
            raise ValueError(f"the categorical output needs one channel (colour channels are coupled by the "
                             f"logistic mixture), got {channels}; use output='logistic'")
        return CategoricalPixels(channels, levels)
    raise ValueError(f"output must be 'logistic', 'categorical' or None, got {output!r}")


DECODER_OUTPUTS = ("bernoulli", "categorical", "logistic", "gaussian")


def decoder_head(channels: int, levels: int | None, output: str | None = None, components: int = 5,
                 learned_scale: bool = True):
    """The distribution of every entry of data with ``channels`` channels and ``levels`` values (``None``:
    continuous) given a decoder's output, for the latent-variable models (VAE, VQ-VAE, dVAE): ``output`` one of
    ``DECODER_OUTPUTS``, by default Bernoulli for binary data, the logistic mixture of ``components`` components for
    more levels, and a Gaussian (its scale learned, or fixed at 1) for continuous data."""
    if output is None:
        output = "gaussian" if levels is None else "bernoulli" if levels == 2 else "logistic"
    if output not in DECODER_OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(DECODER_OUTPUTS)}, got {output!r}")
    if output == "gaussian":
        return GaussianPixels(channels, levels, learned_scale=learned_scale)
    if levels is None:
        raise ValueError(f"the {output} output models discrete data; continuous data take output='gaussian'")
    if output == "bernoulli":
        if levels != 2:
            raise ValueError(f"the Bernoulli output models binary data (levels=2), got levels={levels}")
        return BernoulliPixels(channels)
    return pixel_head(channels, levels, output, components)
