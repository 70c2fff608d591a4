"""Likelihoods of data: the distributions that turn a network's outputs into a distribution over data.

Each is built from parameter tensors of shape ``(N, ...)``, one row per example, like the distributions of
``torch.distributions``, and treats all of an example's entries as independent given the parameters:

- :class:`Bernoulli` (logits) for binary data, the decoder of the VAE on binarized MNIST (Kingma & Welling, 2014,
  App. C.1): ``log p(x) = Σ_i x_i log σ(l_i) + (1 - x_i) log σ(-l_i)``;
- :class:`Categorical` (logits with a levels axis) for ``levels`` values, PixelCNN's softmax over 256 values (van
  den Oord, Kalchbrenner & Kavukcuoglu, 2016a, §5.3): ``log p(x) = Σ_i log softmax(l_i)[x_i]``;
- :class:`Gaussian` (mean and log-scale, learned or fixed) for continuous data (Kingma & Welling, 2014, App. C.2):
  ``log p(x) = Σ_i log N(x_i; μ_i, σ_i²)``;
- :class:`DiscretizedGaussian` for integers ``0..levels-1``, DDPM's decoder (Ho, Jain & Abbeel, 2020, eq. 13): the
  Gaussian's mass over the bin of each value on ``[-1, 1]`` (:mod:`dgm.distributions.codec`), the end bins
  reaching to ``±∞`` so that the probabilities of the ``levels`` values sum to one.

``log_prob(x)`` checks ``x`` (shape ``(N, …)`` as the parameters give it; integers ``0..levels-1`` for the discrete
ones; ``ValueError`` otherwise) and returns the log-likelihood of each example, ``(N,)``, summed over its entries.
``sample()`` draws one value per entry with the global torch generator; ``rsample()`` (Gaussian) is differentiable
in the parameters. ``entropy()`` is the entropy of each example, ``(N,)``; ``mean`` and ``mode`` are per entry. For
the discrete ones they come from the table of all ``levels`` probabilities of each entry (:meth:`value_log_probs`),
so they cost ``levels`` times the memory of the parameters.

:class:`CategoricalPixels` is a *head*: the layout of a categorical in the output channels of an image network
(PixelCNN, Gated PixelCNN), with ``log_prob(params, x)`` and ``sample(params)``, the protocol of
:mod:`dgm.models.autoregressive.base`. A head works inside a model, on data that the model's public methods have
checked (:data:`dgm.core.DATA_METHODS`): its ``log_prob`` checks the shape of ``x``, not its values again (on every
training step that second pass over the data was 4% of a small VAE's step).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.special import log_ndtr

from dgm.core import check_data, check_integer
from dgm.distributions.codec import half_bin_width, to_interval, to_levels
from dgm.distributions.functional import log1mexp, normal_entropy, normal_log_density


def check_values(x: Tensor, shape: torch.Size, levels: int | None) -> Tensor:
    """``x`` if it is data of shape ``shape`` (``(N, …)``, the parameters' examples) holding integers
    ``0..levels-1`` (any finite floats for ``levels=None``), else ``ValueError`` naming what was expected."""
    check_data(x, tuple(shape[1:]), levels)
    return check_event_shape(x, shape)


def check_event_shape(x: Tensor, shape: torch.Size) -> Tensor:
    """``x`` if its shape is ``shape`` (``(N, …)``, the parameters' examples and entries), else ``ValueError``."""
    if len(x) != shape[0]:
        raise ValueError(f"x must hold {shape[0]} examples, one per row of the distribution's parameters, "
                         f"got {len(x)}")
    if x.shape != shape:
        raise ValueError(f"x must have shape {tuple(shape)}, as the distribution's parameters, got {tuple(x.shape)}")
    return x


def sum_per_example(terms: Tensor) -> Tensor:
    """``terms`` ``(N, …)`` summed over all but the first dimension, ``(N,)``."""
    return terms.reshape(len(terms), -1).sum(dim=1)


def values_axis(levels: int, like: Tensor) -> Tensor:
    """The values ``0..levels-1`` along axis 1 of a tensor of ``like``'s number of dimensions, device and dtype,
    ``(1, levels, 1, …, 1)``, to broadcast against parameters unsqueezed at axis 1."""
    values = torch.arange(levels, device=like.device, dtype=like.dtype)
    return values.view(1, levels, *[1] * (like.dim() - 2))


class DataDistribution:
    """Independent entries of data of ``shape`` ``(N, …)``, discrete with ``levels`` values or continuous
    (``levels=None``). Subclasses give :meth:`log_prob_elementwise` and :meth:`sample`."""

    def __init__(self, shape: torch.Size, levels: int | None):
        self.shape, self.levels = shape, levels

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` of each example, ``(N,)``, after checking ``x``."""
        return self.log_prob_of_checked_values(check_values(x, self.shape, self.levels))

    def log_prob_of_checked_values(self, x: Tensor) -> Tensor:
        """``log p(x)`` of each example, ``(N,)``, for ``x`` whose values a model has checked (a head's data: see
        the module docstring); only its shape is checked here."""
        return sum_per_example(self.log_prob_elementwise(check_event_shape(x, self.shape)))

    def log_prob_elementwise(self, x: Tensor) -> Tensor:
        """``log p(x_i)`` of every entry, unchecked, shape ``(N, …)``."""
        raise NotImplementedError

    def sample(self) -> Tensor:
        """One draw of shape ``(N, …)``."""
        raise NotImplementedError


class DiscreteDistribution(DataDistribution):
    """Independent entries with values ``0..levels-1``: the entropy, mean and mode from the table of the
    probabilities of every value, :meth:`value_log_probs`."""

    def value_log_probs(self) -> Tensor:
        """``log p(x_i = v)`` for every value ``v`` at every entry, ``(N, levels, …)``."""
        raise NotImplementedError

    def entropy(self) -> Tensor:
        """``H = -Σ_i Σ_v p_i(v) log p_i(v)`` of each example, ``(N,)``."""
        return sum_per_example(torch.special.entr(self.value_log_probs().exp()).sum(dim=1))

    @property
    def mean(self) -> Tensor:
        """``Σ_v v p_i(v)`` of every entry, ``(N, …)``."""
        probabilities = self.value_log_probs().exp()
        return (probabilities * values_axis(self.levels, probabilities)).sum(dim=1)

    @property
    def mode(self) -> Tensor:
        """The most probable value of every entry, ``(N, …)``."""
        table = self.value_log_probs()
        return table.argmax(dim=1).to(table.dtype)


class Bernoulli(DiscreteDistribution):
    """Independent binary entries with ``P(x_i = 1) = σ(logits_i)``; ``logits`` ``(N, …)``."""

    def __init__(self, logits: Tensor):
        super().__init__(logits.shape, levels=2)
        self.logits = logits

    def log_prob_elementwise(self, x: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, x, reduction="none")

    def value_log_probs(self) -> Tensor:
        return torch.stack([F.logsigmoid(-self.logits), F.logsigmoid(self.logits)], dim=1)

    def sample(self) -> Tensor:
        return torch.bernoulli(torch.sigmoid(self.logits))


class Categorical(DiscreteDistribution):
    """Independent entries with ``P(x_i = v) = softmax(logits_i)_v``; axis ``dim`` of ``logits`` holds the
    ``levels`` logits of each entry (``(N, levels, …)`` by default, as ``F.cross_entropy`` takes them)."""

    def __init__(self, logits: Tensor, dim: int = 1):
        if logits.dim() < 2 or dim % logits.dim() == 0:
            raise ValueError(f"logits must have shape (N, ...) with the levels along an axis other than the first, "
                             f"got shape {tuple(logits.shape)} and dim={dim}")
        self.logits, self.dim = logits, dim % logits.dim()
        shape = logits.shape[:self.dim] + logits.shape[self.dim + 1:]
        super().__init__(shape, levels=check_integer(logits.shape[self.dim], "the number of logits", 2))

    def log_prob_elementwise(self, x: Tensor) -> Tensor:
        log_p = F.log_softmax(self.logits, dim=self.dim)
        return log_p.gather(self.dim, x.long().unsqueeze(self.dim)).squeeze(self.dim)

    def value_log_probs(self) -> Tensor:
        return F.log_softmax(self.logits, dim=self.dim).movedim(self.dim, 1)

    def sample(self) -> Tensor:
        """By inversion of each entry's CDF with one uniform from ``torch.rand`` per entry, so that every sampler
        that asks for the same draws in the same order gets the same values."""
        cdf = F.softmax(self.logits, dim=self.dim).cumsum(dim=self.dim)
        u = torch.rand_like(cdf.narrow(self.dim, 0, 1))
        return (cdf < u).sum(dim=self.dim).clamp(max=self.levels - 1).to(self.logits.dtype)


class Gaussian(DataDistribution):
    """Independent continuous entries ``x_i ~ N(loc_i, e^{2 log_scale_i})``; ``loc`` ``(N, …)``, ``log_scale`` a
    tensor that broadcasts to it (learned: a network's output or a parameter) or a number (a fixed variance)."""

    def __init__(self, loc: Tensor, log_scale: Tensor | float = 0.0):
        super().__init__(loc.shape, levels=None)
        self.loc = loc
        self.log_scale = torch.as_tensor(log_scale, device=loc.device, dtype=loc.dtype).expand_as(loc)

    def log_prob_elementwise(self, x: Tensor) -> Tensor:
        return normal_log_density(x, self.loc, self.log_scale)

    def rsample(self) -> Tensor:
        """``loc + σ ε`` with ``ε ~ N(0, I)``: differentiable in ``loc`` and ``log_scale``."""
        return self.loc + torch.exp(self.log_scale) * torch.randn_like(self.loc)

    @torch.no_grad()
    def sample(self) -> Tensor:
        return self.rsample()

    def entropy(self) -> Tensor:
        return sum_per_example(normal_entropy(self.log_scale))

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc


def discretized_normal_log_prob(x: Tensor, loc: Tensor, log_scale: Tensor, levels: int) -> Tensor:
    """``log P(x)`` of a Gaussian ``N(loc, e^{2 log_scale})`` on ``[-1, 1]`` discretized to ``levels`` values,
    elementwise (broadcasting): Ho et al. (2020), eq. 13.

    Value ``x`` owns ``[x̃ - h, x̃ + h]`` (:mod:`dgm.distributions.codec`), the end bins reach to ``±∞``. With the
    standardised ends ``a = (x̃ - h - μ)/σ`` and ``b = (x̃ + h - μ)/σ``,

        P(0) = Φ(b),    P(levels-1) = Φ(-a),    P(x) = Φ(b) - Φ(a) = Φ(-a) - Φ(-b)  otherwise,

    and the difference is taken on the side of the mean where both CDFs are small (``a + b ≤ 0``: ``Φ(b) - Φ(a)``),
    as ``log Φ(b) + log(1 - e^{-(log Φ(b) - log Φ(a))})`` from ``log_ndtr``, accurate far into either tail.
    """
    half_bin = half_bin_width(levels)
    inverse_scale = torch.exp(-log_scale)
    centred = to_interval(x, levels) - loc
    lower, upper = (centred - half_bin) * inverse_scale, (centred + half_bin) * inverse_scale
    right_of_mean = lower + upper > 0  # then Φ(-a) - Φ(-b): the reflected bin, left of the mean
    high, low = torch.where(right_of_mean, -lower, upper), torch.where(right_of_mean, -upper, lower)
    log_cdf_high, log_cdf_low = log_ndtr(high), log_ndtr(low)
    interior = log_cdf_high + log1mexp(log_cdf_high - log_cdf_low)
    return torch.where(x <= 0, log_ndtr(upper), torch.where(x >= levels - 1, log_ndtr(-lower), interior))


class DiscretizedGaussian(DiscreteDistribution):
    """Independent entries with values ``0..levels-1``, each the Gaussian ``N(loc_i, e^{2 log_scale_i})`` on
    ``[-1, 1]`` discretized to the bins of the values (Ho et al., 2020, eq. 13, with ``levels = 256``); ``loc``
    ``(N, …)``, ``log_scale`` a tensor that broadcasts to it or a number."""

    def __init__(self, loc: Tensor, log_scale: Tensor | float, levels: int):
        super().__init__(loc.shape, levels=check_integer(levels, "levels", 2))
        self.loc = loc
        self.log_scale = torch.as_tensor(log_scale, device=loc.device, dtype=loc.dtype).expand_as(loc)

    def log_prob_elementwise(self, x: Tensor) -> Tensor:
        return discretized_normal_log_prob(x, self.loc, self.log_scale, self.levels)

    def value_log_probs(self) -> Tensor:
        loc, log_scale = self.loc.unsqueeze(1), self.log_scale.unsqueeze(1)
        return discretized_normal_log_prob(values_axis(self.levels, loc), loc, log_scale, self.levels)

    def sample(self) -> Tensor:
        """A draw of the continuous Gaussian, sent to the value whose bin holds it: exactly the discretized
        distribution, since the bins (end bins included) cover the line."""
        return to_levels(self.loc + torch.exp(self.log_scale) * torch.randn_like(self.loc), self.levels)


class CategoricalPixels:
    """A head: a categorical over ``levels`` values for every colour channel of a pixel, channel after channel.

    The ``channels · levels`` parameters are interleaved like the colour groups of :mod:`dgm.nn.masked_conv`:
    parameter ``k`` holds logit ``k // channels`` of channel ``k mod channels``, so the last masked convolution of a
    PixelCNN gives each channel's logits from that channel's group.
    """

    channel_wise = True

    def __init__(self, channels: int, levels: int):
        self.channels = check_integer(channels, "channels", 1)
        self.levels = check_integer(levels, "levels", 2)
        self.param_channels = channels * levels

    def logits(self, params: Tensor) -> Tensor:
        """``(N, levels, C, *positions)``."""
        n, _, *positions = params.shape
        return params.view(n, self.levels, self.channels, *positions)

    def distribution(self, params: Tensor) -> Categorical:
        """The categorical of every channel at every position of ``params`` ``(N, C·levels, *positions)``."""
        return Categorical(self.logits(params), dim=1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``log p(x)`` of each example ``(N, C, *positions)``, ``(N,)``."""
        return self.distribution(params).log_prob_of_checked_values(x)

    def sample(self, params: Tensor) -> Tensor:
        """One draw ``(N, C, *positions)`` (see :meth:`Categorical.sample`)."""
        return self.distribution(params).sample()

    def mean(self, params: Tensor) -> Tensor:
        """The expected value of every entry on the scale ``0..levels-1``, ``(N, C, *positions)``."""
        return self.distribution(params).mean


class BernoulliPixels:
    """A head: one logit per entry, ``P(x_i = 1) = σ(l_i)``, for binary data (the VAE's decoder on binarized MNIST,
    Kingma & Welling, 2014, appendix C.1); ``param_channels = channels``."""

    channel_wise = True
    levels = 2

    def __init__(self, channels: int):
        self.channels = self.param_channels = check_integer(channels, "channels", 1)

    def distribution(self, params: Tensor) -> Bernoulli:
        return Bernoulli(params)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.distribution(params).log_prob_of_checked_values(x)

    def sample(self, params: Tensor) -> Tensor:
        return self.distribution(params).sample()

    def mean(self, params: Tensor) -> Tensor:
        """``P(x_i = 1)`` of every entry."""
        return torch.sigmoid(params)


GAUSSIAN_LOG_SCALE_MIN = -7.0  # a learned scale stays above e^-7: the density of continuous data stays bounded


class GaussianPixels:
    """A head: a Gaussian per entry with its mean, and its log-scale where ``learned_scale`` (else the fixed
    ``log_scale``: homework 2's ConvVAE decoder, ``log σ = 0``). For continuous data (``levels=None``) it is the
    density :class:`Gaussian`; for integers ``0..levels-1`` the Gaussian on ``[-1, 1]`` discretized to their bins,
    :class:`DiscretizedGaussian`, so that the likelihood of discrete data is a probability. A learned log-scale is
    clamped below at ``GAUSSIAN_LOG_SCALE_MIN``. Parameters ``(N, P, *positions)`` are laid out like
    :class:`CategoricalPixels`'s: parameter ``k`` is parameter ``k // channels`` (mean, log-scale) of channel
    ``k mod channels``."""

    channel_wise = True

    def __init__(self, channels: int, levels: int | None = None, learned_scale: bool = True, log_scale: float = 0.0):
        self.channels = check_integer(channels, "channels", 1)
        self.levels = None if levels is None else check_integer(levels, "levels", 2)
        self.learned_scale, self.log_scale = learned_scale, log_scale
        self.param_channels = channels * (2 if learned_scale else 1)

    def distribution(self, params: Tensor) -> Gaussian | DiscretizedGaussian:
        loc = params[:, :self.channels]
        log_scale = params[:, self.channels:].clamp(min=GAUSSIAN_LOG_SCALE_MIN) if self.learned_scale \
            else self.log_scale
        return Gaussian(loc, log_scale) if self.levels is None else DiscretizedGaussian(loc, log_scale, self.levels)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.distribution(params).log_prob_of_checked_values(x)

    def sample(self, params: Tensor) -> Tensor:
        return self.distribution(params).sample()

    def mean(self, params: Tensor) -> Tensor:
        """The mean of every entry: on the scale ``0..levels-1`` for discrete data, that of the Gaussian before
        discretization (its bins' probabilities shift it slightly near the end values)."""
        loc = params[:, :self.channels]
        return loc if self.levels is None else ((loc + 1) * (self.levels - 1) / 2).clamp(0, self.levels - 1)
