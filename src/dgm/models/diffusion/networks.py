"""The network of a diffusion model of vectors: an MLP of ``x_t`` and the time, as in the 2D experiments of DDPM
and score SDEs (an MLP on ``[x, e(t)]``; the image models use :class:`dgm.nn.unet.UNet`).

The time enters through its sinusoidal embedding and an MLP (:class:`dgm.nn.embedding.TimeEmbedding`) and is added
to every hidden layer, ``h_{k+1} = SiLU(W_k h_k + U_k e)``, so that each layer can change with the noise level. A
class label, where the model has classes, adds a learned vector to ``e``; the extra index ``n_classes`` is the
null label of classifier-free guidance (Ho & Salimans, 2022), as in the U-Net.

With ``input_octaves = L`` the MLP reads ``x`` beside its positional encoding (Mildenhall et al., 2020, "NeRF",
eq. 4), ``γ(x) = [sin(2^k π x), cos(2^k π x)]`` for ``k = 0 … L − 1`` and every coordinate: an MLP of ``x`` alone
learns high frequencies slowly (Tancik et al., 2020, "Fourier features let networks learn high frequency functions
in low dimensional domains"), and the score of data with fine structure (wells of σ = 0.0177 on the 25 Gaussians,
the sharp edges of the checkerboard) is such a function at small noise.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.nn.embedding import TimeEmbedding
from dgm.nn.unet import UNet

TIME_FEATURES = 32  # sinusoidal features of the time; the embedding has 4x as many


class TimeConditionedMLP(nn.Module):
    """``(x (N, D), t (N,), labels (N,) | None) → (N, out_features)``, hidden widths ``hidden``."""

    def __init__(self, dim: int, hidden: Sequence[int], out_features: int, n_classes: int | None = None,
                 input_octaves: int = 0):
        super().__init__()
        if not hidden:
            raise ValueError("the time-conditioned MLP needs at least one hidden layer (hidden=[128, 128])")
        self.input_octaves = check_integer(input_octaves, "input_octaves", 0)
        self.time = TimeEmbedding(TIME_FEATURES)
        embedding_dim = 4 * TIME_FEATURES
        self.n_classes = n_classes
        self.label_embedding = None if n_classes is None else nn.Embedding(n_classes + 1, embedding_dim)
        widths = [dim * (1 + 2 * self.input_octaves), *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.time_projections = nn.ModuleList(nn.Linear(embedding_dim, width) for width in hidden)
        self.output = nn.Linear(hidden[-1], out_features)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        embedding = self.time(t)
        if self.label_embedding is not None:
            null = torch.full_like(t, self.n_classes, dtype=torch.long)
            embedding = embedding + self.label_embedding(null if labels is None else labels)
        h = positional_encoding(x, self.input_octaves)
        for layer, projection in zip(self.layers, self.time_projections):
            h = nn.functional.silu(layer(h) + projection(embedding))
        return self.output(h)


def positional_encoding(x: Tensor, octaves: int) -> Tensor:
    """``[x, sin(2^k π x), cos(2^k π x)]`` for ``k = 0 … octaves − 1`` and each coordinate of ``x (N, D)``:
    ``(N, D (1 + 2 octaves))``; ``x`` itself for no octaves."""
    if not octaves:
        return x
    angles = x[:, :, None] * (math.pi * 2.0 ** torch.arange(octaves, device=x.device, dtype=x.dtype))
    return torch.cat([x, angles.sin().flatten(1), angles.cos().flatten(1)], dim=1)


def denoising_network(shape: tuple[int, ...], output_factor: int, n_classes: int | None, hidden: Sequence[int],
                      width: int, multipliers: Sequence[int], blocks_per_level: int,
                      attention_levels: Sequence[int], dropout: float, groups: int, patch: int,
                      input_octaves: int = 0) -> nn.Module:
    """The network of a diffusion model of data of ``shape``: a :class:`TimeConditionedMLP` of widths ``hidden``
    for vectors ``(D,)``, a :class:`~dgm.nn.unet.UNet` for images ``(C, H, W)``; ``output_factor`` outputs per
    entry of the data (2 with learned variances); ``input_octaves`` is the MLP's (refused for images)."""
    if len(shape) == 1:
        return TimeConditionedMLP(shape[0], hidden, output_factor * shape[0], n_classes, input_octaves)
    if len(shape) != 3:
        raise ValueError(f"diffusion models take vectors (D,) or images (C, H, W), got shape {tuple(shape)}")
    if input_octaves:
        raise ValueError("input_octaves is an option of the MLP for vectors; the U-Net of images has none")
    return UNet(shape[0], output_factor * shape[0], width, multipliers, blocks_per_level, attention_levels,
                dropout=dropout, groups=groups, n_classes=n_classes, patch=patch)
