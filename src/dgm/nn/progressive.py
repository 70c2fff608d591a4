"""The three layers that Progressive GANs add to a GAN's networks (Karras, Aila, Laine & Lehtinen, 2018,
"Progressive Growing of GANs for Improved Quality, Stability, and Variation").

- :class:`PixelNorm` (§4.2): in the generator, each pixel's feature vector divided by its root mean square over
  the channels, ``b_xy = a_xy / sqrt(1/N Σ_j (a^j_xy)² + ε)`` with ``ε = 10⁻⁸``, after each convolution; it keeps
  the magnitudes of G's and D's signals from spiralling out of control.
- :class:`MinibatchStddev` (§3): in the critic, the standard deviation of each feature at each pixel over the
  minibatch, averaged over features and pixels into one number, appended to every example as one more (constant)
  feature map: the critic sees how varied a batch is, and a generator that collapses is told apart.
- :func:`equalized` (§4.1, "equalized learning rate"): a layer whose weights are drawn from ``N(0, 1)`` and scaled at
  run time by He's constant ``c = gain / sqrt(fan_in)`` (``gain = √2`` before a (leaky) ReLU): ``ŵ = c w``. Adam's
  steps do not depend on the scale of the gradient, so every layer's weights then change at the same relative
  speed. It is a parametrization (``torch.nn.utils.parametrize``): ``layer.weight`` is the scaled weight ``ŵ``,
  ``layer.parametrizations.weight.original`` the stored ``w``. StyleGAN's learning-rate multiplier ``λ`` (Karras,
  Laine & Aila, 2019, Appendix C: λ = 0.01 in the mapping network) slows one layer further: ``w`` is drawn from
  ``N(0, 1/λ²)`` and scaled by ``λ c``, the bias stored as ``b`` and used as ``λ b``, so the layer starts as before
  and every Adam step moves it ``λ`` times as far.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

EPSILON = 1e-8  # the ε of pixel norm and of the minibatch standard deviation (the authors' code)


def pixel_norm(a: Tensor) -> Tensor:
    """``a / sqrt(mean over channels of a² + ε)`` at each pixel (§4.2, eq. in the text); the channels are axis 1
    (of a vector ``(N, C)`` or a feature map ``(N, C, H, W)``)."""
    return a * torch.rsqrt(a.square().mean(1, keepdim=True) + EPSILON)


class PixelNorm(nn.Module):
    """:func:`pixel_norm` as a layer."""

    def forward(self, a: Tensor) -> Tensor:
        return pixel_norm(a)


class MinibatchStddev(nn.Module):
    """Feature maps ``(N, C, H, W)`` with one more channel ``(N, C + 1, H, W)`` that holds, everywhere, the mean
    over features and pixels of the standard deviation over the minibatch (§3): ``mean_{c,h,w} sqrt(Var_n x + ε)``,
    the variance of the whole batch, as the paper describes it (the authors' code takes groups of four)."""

    def forward(self, x: Tensor) -> Tensor:
        spread = (x.var(0, unbiased=False) + EPSILON).sqrt().mean()
        return torch.cat([x, spread.expand(len(x), 1, *x.shape[2:])], 1)


class Scale(nn.Module):
    """The parametrization ``p ↦ constant · p`` of a weight or bias, applied at every call."""

    def __init__(self, constant: float):
        super().__init__()
        self.constant = constant

    def forward(self, parameter: Tensor) -> Tensor:
        return parameter * self.constant

    def extra_repr(self) -> str:
        return f"constant={self.constant:.4g}"


def equalized(layer: nn.Linear | nn.Conv2d, gain: float = math.sqrt(2), lr_multiplier: float = 1.0
              ) -> nn.Linear | nn.Conv2d:
    """``layer`` with an equalized learning rate (§4.1): its stored weights redrawn from ``N(0, 1/λ²)``, its bias
    set to zero, and its weight scaled at every call by ``λ`` times He's constant ``gain / sqrt(fan_in)``
    (``fan_in``: the inputs of one output, ``in`` times the kernel's size); with a multiplier ``λ ≠ 1`` the bias is
    scaled by ``λ`` too (:class:`Scale`)."""
    if not lr_multiplier > 0:
        raise ValueError(f"lr_multiplier must be positive, got {lr_multiplier!r}")
    nn.init.normal_(layer.weight, std=1 / lr_multiplier)
    nn.init.zeros_(layer.bias)
    he_constant = gain / math.sqrt(layer.weight[0].numel())
    parametrize.register_parametrization(layer, "weight", Scale(lr_multiplier * he_constant))
    if lr_multiplier != 1:
        parametrize.register_parametrization(layer, "bias", Scale(lr_multiplier))
    return layer
