"""Layers of a style-based generator: StyleGAN's mapping network and noise inputs (Karras, Laine & Aila, 2019, "A
Style-Based Generator Architecture for Generative Adversarial Networks", §2) with StyleGAN2's modulated convolutions
in place of AdaIN (Karras et al., 2020, "Analyzing and Improving the Image Quality of StyleGAN", §2.2, eqs. 1–3).

- :class:`MappingNetwork` (2019, §2, Figure 1b): ``z`` normalised by pixel norm, ``z / √(mean_i z_i² + ε)`` (Karras
  et al., 2018, "Progressive Growing of GANs", §4.2), then ``layers`` fully connected layers, each followed by
  LeakyReLU(0.2), to the intermediate latent ``w``. With classes, a learned embedding ``e_y`` of the label,
  normalised in the same way, is concatenated to the normalised ``z`` (the conditional mapping network of
  StyleGAN2-ADA, Karras et al., 2020, "Training Generative Adversarial Networks with Limited Data").
- :class:`ModulatedConv2d` (2020, eqs. 1–3): a style ``s = A(w)`` (a learned affine map of ``w``, its bias starting
  at 1) scales the input channels of the weights, ``w'_ijk = s_i · w_ijk`` (eq. 1), and demodulation divides each
  output channel by the norm the scaling gave it, ``w''_ijk = w'_ijk / √(Σ_{i,k} w'_ijk² + ε)`` (eq. 3), so that for
  inputs of unit variance (i.i.d.) the outputs have unit variance again (eq. 2, ``σ_j = √(Σ_{i,k} w'_ijk²)``). Each
  sample has its own weights, applied without a loop over samples: the input scaled by ``s``, one convolution with
  the shared weights, the output scaled by ``1 / σ_j`` (equal to the per-sample convolution, tested).
- :class:`NoiseInjection` (2019, §3.2): one image of Gaussian noise per sample, added to every channel with a
  learned per-channel scale that starts at 0.
- :class:`StyleBlock`: an optional ×2 bilinear upsampling, a 3x3 modulated convolution, noise, a bias and
  LeakyReLU(0.2): one "style" of the synthesis network (2020, Figure 2d).
- :class:`ToImage`: a 1x1 modulated convolution to the image's channels without demodulation, plus a bias (the
  "tRGB" layers of 2020, Figure 7).

Every weight has the equalised learning rate of both papers (Progressive GANs, §4.1;
:func:`~dgm.nn.progressive.equalized`): stored as ``N(0, 1)`` and scaled at run time by He's constant, so that Adam
moves each layer at the same relative speed; the mapping network's layers are slowed further by the learning-rate
multiplier ``λ`` (0.01 in StyleGAN, Appendix C). A demodulated weight's own scale cancels in eq. 3, but its rate of
change does not.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from dgm.nn.progressive import Scale, equalized, pixel_norm

EPSILON = 1e-8  # ε of demodulation (eq. 3)
SLOPE = 0.2  # the negative slope of every LeakyReLU
MAPPING_LR_MULTIPLIER = 0.01  # StyleGAN's λ of the mapping network (Appendix C)


def upsample(x: Tensor) -> Tensor:
    """Double the height and width by bilinear interpolation (StyleGAN, §2: bilinear resampling)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _leaky_linear(features_in: int, features_out: int, lr_multiplier: float) -> nn.Sequential:
    """An equalised fully connected layer (He's constant for LeakyReLU(0.2), learning-rate multiplier ``λ``) and
    LeakyReLU(0.2)."""
    gain = nn.init.calculate_gain("leaky_relu", SLOPE)
    return nn.Sequential(equalized(nn.Linear(features_in, features_out), gain, lr_multiplier), nn.LeakyReLU(SLOPE))


class MappingNetwork(nn.Module):
    """``z`` (and a class label) → ``w`` (StyleGAN, §2, Figure 1b); see the module docstring. ``lr_multiplier``:
    StyleGAN's λ of every layer."""

    def __init__(self, latent_dim: int, w_dim: int, layers: int, n_classes: int | None = None,
                 lr_multiplier: float = MAPPING_LR_MULTIPLIER):
        super().__init__()
        self.embedding = None if n_classes is None else nn.Embedding(n_classes, latent_dim)
        widths = [latent_dim * (1 if n_classes is None else 2)] + [w_dim] * layers
        self.net = nn.Sequential(*(_leaky_linear(a, b, lr_multiplier) for a, b in zip(widths[:-1], widths[1:])))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        z = pixel_norm(z)
        if self.embedding is not None:
            z = torch.cat([z, pixel_norm(self.embedding(labels))], dim=1)
        return self.net(z)


class ModulatedConv2d(nn.Module):
    """A convolution whose weights each sample's style modulates and, where ``demodulate``, demodulates (StyleGAN2,
    eqs. 1–3); see the module docstring. Called as ``layer(x, w)`` with ``x`` ``(N, C_in, H, W)`` and ``w``
    ``(N, w_dim)``; ``same`` padding."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.demodulate = demodulate
        self.weight = nn.Parameter(torch.randn(channels_out, channels_in, kernel_size, kernel_size))
        parametrize.register_parametrization(self, "weight", Scale(1 / math.sqrt(channels_in * kernel_size ** 2)))
        self.affine = equalized(nn.Linear(w_dim, channels_in), gain=1)  # A of the paper: the style s = A(w)
        nn.init.ones_(self.affine.bias)

    def styles_and_demodulation(self, w: Tensor, weight: Tensor) -> tuple[Tensor, Tensor | None]:
        """The style ``s = A(w)`` ``(N, C_in)`` and, where ``demodulate``, ``1 / σ_j`` ``(N, C_out)`` with
        ``σ_j² = Σ_{i,k} (s_i · w_ijk)² + ε = Σ_i s_i² Σ_k w_ijk² + ε`` (eq. 3), for the layer's (scaled)
        ``weight``, read once per call by the caller."""
        s = self.affine(w)
        if not self.demodulate:
            return s, None
        return s, torch.rsqrt(s.square() @ weight.square().sum(dim=(2, 3)).T + EPSILON)

    def modulated_weight(self, w: Tensor) -> Tensor:
        """Each sample's weights ``(N, C_out, C_in, k, k)``: ``s_i · w_ijk`` (eq. 1), divided by ``σ_j`` where
        ``demodulate`` (eq. 3)."""
        weight = self.weight
        s, inverse_sigma = self.styles_and_demodulation(w, weight)
        modulated = weight * s[:, None, :, None, None]
        return modulated if inverse_sigma is None else modulated * inverse_sigma[:, :, None, None, None]

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """The convolution with :meth:`modulated_weight`, computed as StyleGAN2's training code does: the input
        scaled by ``s``, one ordinary convolution with the shared weights, the output scaled by ``1 / σ`` (the same
        numbers; on a CPU 1.5 times faster than one grouped convolution with per-sample weights)."""
        weight = self.weight  # the equalised scaling, applied once
        s, inverse_sigma = self.styles_and_demodulation(w, weight)
        out = F.conv2d(x * s[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        return out if inverse_sigma is None else out * inverse_sigma[:, :, None, None]


class NoiseInjection(nn.Module):
    """``h + b ⊙ noise``: one ``N(0, 1)`` image per sample, broadcast to every channel, with a learned per-channel
    scale ``b`` that starts at 0 (StyleGAN, §3.2). ``noise=False`` leaves the noise out."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(channels))

    def forward(self, h: Tensor, noise: bool = True) -> Tensor:
        if not noise:
            return h
        n, _, height, width = h.shape
        return h + self.scale[:, None, None] * torch.randn(n, 1, height, width, device=h.device, dtype=h.dtype)


class StyleBlock(nn.Module):
    """(×2 bilinear upsampling,) 3x3 modulated convolution, noise, bias, LeakyReLU(0.2): ``block(h, w, noise)``."""

    def __init__(self, channels_in: int, channels_out: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(channels_in, channels_out, 3, w_dim)
        self.noise = NoiseInjection(channels_out)
        self.bias = nn.Parameter(torch.zeros(channels_out))

    def forward(self, h: Tensor, w: Tensor, noise: bool = True) -> Tensor:
        if self.upsample:
            h = upsample(h)
        h = self.noise(self.conv(h, w), noise) + self.bias[:, None, None]
        return F.leaky_relu(h, SLOPE)


class ToImage(nn.Module):
    """A 1x1 modulated convolution to the image's channels, without demodulation, plus a bias (StyleGAN2's tRGB)."""

    def __init__(self, channels_in: int, image_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(channels_in, image_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(image_channels))

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        return self.conv(h, w) + self.bias[:, None, None]
