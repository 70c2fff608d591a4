"""The network of a diffusion model of vectors: an MLP of ``x_t`` and the time, as in the 2D experiments of DDPM
and score SDEs (an MLP on ``[x, e(t)]``; the image models use :class:`dgm.nn.unet.UNet`).

The time enters through its sinusoidal embedding and an MLP (:class:`dgm.nn.embedding.TimeEmbedding`) and is added
to every hidden layer, ``h_{k+1} = SiLU(W_k h_k + U_k e)``, so that each layer can change with the noise level. A
class label, where the model has classes, adds a learned vector to ``e``; the extra index ``n_classes`` is the
null label of classifier-free guidance (Ho & Salimans, 2022), as in the U-Net.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.nn.embedding import TimeEmbedding
from dgm.nn.unet import UNet

TIME_FEATURES = 32  # sinusoidal features of the time; the embedding has 4x as many


class TimeConditionedMLP(nn.Module):
    """``(x (N, D), t (N,), labels (N,) | None) → (N, out_features)``, hidden widths ``hidden``."""

    def __init__(self, dim: int, hidden: Sequence[int], out_features: int, n_classes: int | None = None):
        super().__init__()
        if not hidden:
            raise ValueError("the time-conditioned MLP needs at least one hidden layer (hidden=[128, 128])")
        self.time = TimeEmbedding(TIME_FEATURES)
        embedding_dim = 4 * TIME_FEATURES
        self.n_classes = n_classes
        self.label_embedding = None if n_classes is None else nn.Embedding(n_classes + 1, embedding_dim)
        widths = [dim, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.time_projections = nn.ModuleList(nn.Linear(embedding_dim, width) for width in hidden)
        self.output = nn.Linear(hidden[-1], out_features)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        embedding = self.time(t)
        if self.label_embedding is not None:
            null = torch.full_like(t, self.n_classes, dtype=torch.long)
            embedding = embedding + self.label_embedding(null if labels is None else labels)
        h = x
        for layer, projection in zip(self.layers, self.time_projections):
            h = nn.functional.silu(layer(h) + projection(embedding))
        return self.output(h)


def denoising_network(shape: tuple[int, ...], output_factor: int, n_classes: int | None, hidden: Sequence[int],
                      width: int, multipliers: Sequence[int], blocks_per_level: int,
                      attention_levels: Sequence[int], dropout: float, groups: int, patch: int) -> nn.Module:
    """The network of a diffusion model of data of ``shape``: a :class:`TimeConditionedMLP` of widths ``hidden``
    for vectors ``(D,)``, a :class:`~dgm.nn.unet.UNet` for images ``(C, H, W)``; ``output_factor`` outputs per
    entry of the data (2 with learned variances)."""
    if len(shape) == 1:
        return TimeConditionedMLP(shape[0], hidden, output_factor * shape[0], n_classes)
    if len(shape) != 3:
        raise ValueError(f"diffusion models take vectors (D,) or images (C, H, W), got shape {tuple(shape)}")
    return UNet(shape[0], output_factor * shape[0], width, multipliers, blocks_per_level, attention_levels,
                dropout=dropout, groups=groups, n_classes=n_classes, patch=patch)
