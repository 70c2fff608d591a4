"""Class conditioning of GAN generators and critics.

- :class:`ConditionalBatchNorm2d` (de Vries et al., 2017; Miyato & Koyama, 2018, §3): batch normalisation without
  its own affine map, followed by a per-class scale and shift, ``γ_y ⊙ BN(h) + β_y``, with ``γ`` starting at 1 and
  ``β`` at 0. Without classes it is plain ``BatchNorm2d``.
- :class:`ProjectionHead` (Miyato & Koyama, 2018, "cGANs with Projection Discriminator", eq. 3): the critic's
  output from features ``φ(x)`` is ``ψ(φ(x)) + ⟨V_y, φ(x)⟩``, a linear output plus the inner product of the features
  with a learned embedding of the class; without classes, the linear output alone.
"""
from __future__ import annotations

from torch import Tensor, nn


class ConditionalBatchNorm2d(nn.Module):
    def __init__(self, channels: int, n_classes: int | None = None):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=n_classes is None)
        self.scale = self.shift = None
        if n_classes is not None:
            self.scale, self.shift = nn.Embedding(n_classes, channels), nn.Embedding(n_classes, channels)
            nn.init.ones_(self.scale.weight)
            nn.init.zeros_(self.shift.weight)

    def forward(self, h: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.norm(h)
        if self.scale is None:
            return h
        return self.scale(labels)[:, :, None, None] * h + self.shift(labels)[:, :, None, None]


class ProjectionHead(nn.Module):
    def __init__(self, features: int, n_classes: int | None = None):
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embedding = None if n_classes is None else nn.Embedding(n_classes, features)

    def forward(self, features: Tensor, labels: Tensor | None = None) -> Tensor:
        out = self.linear(features).squeeze(1)
        if self.embedding is None:
            return out
        return out + (self.embedding(labels) * features).sum(1)
