"""Distributions of ``dgm``: base distributions of latent variables, likelihoods of data, and the codec between
discrete data and ``[-1, 1]``.

- :mod:`~dgm.distributions.priors`: :class:`StandardNormal`, :class:`DiagonalNormal`, :class:`MixtureOfGaussians`,
  ``nn.Module``\\ s over events of a fixed shape (a flow's base, a VAE's prior);
- :mod:`~dgm.distributions.likelihoods`: :class:`Bernoulli`, :class:`Categorical`, :class:`Gaussian`,
  :class:`DiscretizedGaussian`, built from a network's outputs, ``log_prob(x)`` per example;
- heads of autoregressive image models, ``log_prob(params, x)`` and ``sample(params)`` on a network's output
  channels: :class:`CategoricalPixels` and PixelCNN++'s :class:`DiscretizedLogisticMixture`
  (:mod:`~dgm.distributions.logistic_mixture`), chosen by :func:`pixel_head` (and, with Bernoulli and Gaussian heads, :func:`decoder_head` for the decoders
  of latent-variable models);
- heads for the factorised decoders of VAEs: :class:`BernoulliPixels` and :class:`GaussianPixels`;
- :func:`normal_kl`, the KL divergence of diagonal Gaussians (:mod:`~dgm.distributions.functional`);
- :func:`importance_weighted_bound` (:mod:`~dgm.distributions.importance`), the bound of dequantized flows and VAEs;
- :mod:`~dgm.distributions.codec`: :func:`to_interval` and :func:`to_levels`, integers ``0..L-1`` to ``[-1, 1]``
  and back.
"""
from dgm.distributions.codec import half_bin_width, to_8bit_scale, to_interval, to_levels
from dgm.distributions.functional import normal_kl
from dgm.distributions.likelihoods import (Bernoulli, BernoulliPixels, Categorical, CategoricalPixels,
                                           DiscretizedGaussian, Gaussian, GaussianPixels)
from dgm.distributions.importance import importance_weighted_bound, log_mean_exp
from dgm.distributions.logistic_mixture import (DECODER_OUTPUTS, DiscretizedLogisticMixture, PixelHead, decoder_head,
                                               pixel_head)
from dgm.distributions.priors import DiagonalNormal, MixtureOfGaussians, StandardNormal

__all__ = ["DECODER_OUTPUTS", "decoder_head", "Bernoulli", "BernoulliPixels", "Categorical", "CategoricalPixels", "GaussianPixels", "log_mean_exp",
           "normal_kl", "DiagonalNormal", "DiscretizedGaussian",
           "DiscretizedLogisticMixture", "Gaussian", "MixtureOfGaussians", "PixelHead", "StandardNormal",
           "half_bin_width", "importance_weighted_bound", "pixel_head", "to_8bit_scale", "to_interval", "to_levels"]
