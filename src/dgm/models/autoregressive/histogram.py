"""The histogram: one free logit per cell of a discrete joint space (course lecture 1 and seminar 1).

For data of ``D`` dimensions with ``levels`` values each, the model is ``p(x) = softmax(θ)_{c(x)}``, where ``c(x)``
is the cell of ``x`` in the ``levels**D`` table (row-major). Its maximum-likelihood estimate is the table of
empirical frequencies: the gradient of the mean negative log-likelihood is ``softmax(θ) - p̂``, zero exactly when
``softmax(θ) = p̂``. It is the baseline that every other model of a small discrete space should match.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import GenerativeModel, check_levels
from dgm.registry import register_model

MAX_CELLS = 10**6


@register_model("histogram", "histogram: one free logit per cell of a small discrete joint space (levels**D cells)")
class Histogram(GenerativeModel):
    """A categorical distribution over all ``levels**D`` configurations of discrete data of ``shape``."""

    likelihood = "exact"

    def __init__(self, shape: Sequence[int], levels: int | None = None):
        super().__init__()
        self.shape = tuple(int(size) for size in shape)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {tuple(shape)}")
        self.levels = check_levels(levels, "the histogram")
        self.dim = math.prod(self.shape)
        cells = levels**self.dim
        if cells > MAX_CELLS:
            raise ValueError(f"a histogram over shape {self.shape} with {levels} levels has {levels}**{self.dim} "
                             f"cells, more than the {MAX_CELLS:.0e} allowed; use an autoregressive model")
        self.logits = nn.Parameter(torch.zeros(cells))
        self.register_buffer("strides", levels ** torch.arange(self.dim - 1, -1, -1), persistent=False)

    def _cells(self, x: Tensor) -> Tensor:
        """Row-major cell index of each example of ``x`` (N, *shape) → (N,)."""
        return (x.reshape(len(x), self.dim).long() * self.strides).sum(dim=1)

    def probabilities(self) -> Tensor:
        """The probability table, shape ``(levels,) * D``."""
        return F.softmax(self.logits, dim=0).view((self.levels,) * self.dim)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, shape ``(N,)``."""
        return F.log_softmax(self.logits, dim=0)[self._cells(x)]


    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` samples of shape ``(n, *shape)``, drawn with ``torch.multinomial`` in one pass."""
        cells = torch.multinomial(F.softmax(self.logits, dim=0), n, replacement=True)
        values = torch.div(cells[:, None], self.strides, rounding_mode="floor") % self.levels
        return values.to(self.logits.dtype).view(n, *self.shape)
