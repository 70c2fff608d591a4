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
  ``layer.parametrizations.weight.original`` the stored ``w``.
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


class HeScale(nn.Module):
    """The parametrization ``w ↦ c w`` of a weight ``(out, in, ...)``, with He's constant ``c = gain / sqrt(fan_in)``
    and ``fan_in`` the inputs of one output (``in`` times the kernel's size)."""

    def __init__(self, weight: Tensor, gain: float):
        super().__init__()
        self.constant = gain / math.sqrt(weight[0].numel())

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.constant

    def extra_repr(self) -> str:
        return f"c={self.constant:.4g}"


def equalized(layer: nn.Linear | nn.Conv2d, gain: float = math.sqrt(2)) -> nn.Linear | nn.Conv2d:
    """``layer`` with an equalized learning rate (§4.1): its stored weights redrawn from ``N(0, 1)``, its bias set to
    zero, and its weight scaled by He's constant at every call (:class:`HeScale`)."""
    nn.init.normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    parametrize.register_parametrization(layer, "weight", HeScale(layer.weight, gain))
    return layer
