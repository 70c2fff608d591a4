"""Discrete data of the course's seminars 1 and 2, with the exact probability table of each generator.

* ``histogram-1d`` (seminar 1, "1D_histogram"): ``generate_1d_data(5000, 100)`` draws ``y`` from the mixture
  ``½ N(0.2, 0.05²) + ½ N(0.6, 0.15²)`` and keeps ``clip(trunc(99 y), 0, 99)``. We reproduce the seminar's draws
  exactly (numpy's legacy generator seeded 42) and its 80/20 split. Value ``k`` in 1..98 holds ``y ∈ [k, k+1)/99``.
  ``trunc`` maps ``(−1, 1)`` to 0 and ``clip`` moves the rest of each tail to an end, so 0 holds ``y < 1/99`` and 99
  holds ``y ≥ 1``. The probability of each value is a difference of the mixture's CDF.
* ``image-density-60`` (seminar 2, MADE): the seminar makes a 60×60 picture into a probability table over
  (row, column) and draws 20000 pairs. Its picture is not available offline, so we use scikit-learn's ``china.jpg``:
  the luma (ITU-R BT.601) of the 420×420 square at rows 0..419 and columns 40..459 (the pagoda), averaged over 7×7
  blocks, then ``p ∝ (1 − grey/255)³``. Its entropy is 7.5056 nats, 3.7528 nats per dimension, clearly below the
  seminar's target test NLL of 4.0 nats per dimension.

Outcomes follow the data convention of :mod:`dgm.core`: float tensors of integer cell indices, ``levels`` per axis.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from dgm.core import check_data, check_integer, check_sample_count
from dgm.data.base import Data
from dgm.registry import register_dataset

MIXTURE_1D = ((0.5, 0.2, 0.05), (0.5, 0.6, 0.15))  # (weight, mean, std) of seminar 1's two Gaussians
TRAIN_SHARE = 0.8                                   # both seminars split 80/20
IMAGE_SIZE = 60
IMAGE_BLOCK = 7                                      # 420 = 60 · 7 pixels per side
IMAGE_CORNER = (0, 40)                               # top-left pixel of the square cut from china.jpg
DARKNESS_POWER = 3.0


class DiscreteTable:
    """A categorical distribution over the cells of a table of any shape; an outcome is a cell's index vector."""

    def __init__(self, probabilities: Tensor):
        if not isinstance(probabilities, Tensor) or not probabilities.is_floating_point() or probabilities.dim() < 1:
            raise ValueError("probabilities must be a floating-point tensor with at least one dimension")
        if not torch.isfinite(probabilities).all() or (probabilities < 0).any():
            raise ValueError("probabilities must be finite and non-negative")
        if abs(probabilities.sum().item() - 1) > 1e-9:
            raise ValueError(f"probabilities must sum to 1, got {probabilities.sum().item()!r}")
        self._probabilities = probabilities.to(torch.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._probabilities.shape)

    def probabilities(self) -> Tensor:
        """The table (float64, a copy)."""
        return self._probabilities.clone()

    def entropy(self) -> float:
        """``−Σ p log p`` in nats, for one outcome (all its dimensions together)."""
        return -torch.special.xlogy(self._probabilities, self._probabilities).sum().item()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` outcomes, shape ``(n, table dimensions)``, float32 holding integer indices."""
        check_sample_count(n)
        cells = torch.multinomial(self._probabilities.reshape(-1), n, replacement=True, generator=generator)
        return torch.stack(torch.unravel_index(cells, self.shape), dim=1).float()

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-probability of each outcome (row of ``x``), shape ``(N,)``; ``−inf`` for cells of probability 0."""
        check_data(x, (len(self.shape),), max(self.shape))
        if (x >= torch.tensor(self.shape, dtype=x.dtype)).any():
            raise ValueError(f"x must hold cell indices below the table's shape {self.shape}")
        return self._probabilities.log()[x.long().unbind(dim=1)].to(x.dtype)


def _split(name: str, outcomes: Tensor, levels: int, table: DiscreteTable) -> Data:
    """The first ``TRAIN_SHARE`` of the outcomes for training, the rest for testing, as the seminars do."""
    train_size = int(TRAIN_SHARE * len(outcomes))
    return Data(name, outcomes[:train_size], outcomes[train_size:], levels=levels, distribution=table)


# -- seminar 1: a binned mixture of two Gaussians ---------------------------------------------------------------------
def generate_1d_data(count: int = 5000, bins: int = 100, seed: int = 42) -> Tensor:
    """Seminar 1's ``generate_1d_data`` draw for draw (``np.random.seed(seed)``), shape ``(count, 1)``."""
    check_integer(count, "count", 1)
    check_integer(bins, "bins", 2)
    check_integer(seed, "seed", 0)
    generator = np.random.RandomState(seed)
    first, second = (mean + std * generator.randn(count) for _, mean, std in MIXTURE_1D)
    from_first = generator.rand(count) < MIXTURE_1D[0][0]
    values = np.clip(np.trunc(np.where(from_first, first, second) * (bins - 1)), 0, bins - 1)
    return torch.from_numpy(values).float()[:, None]


def histogram_1d(bins: int = 100) -> DiscreteTable:
    """The exact law of :func:`generate_1d_data`'s values: ``P(k) = F(e_{k+1}) − F(e_k)``, ``F`` the mixture's CDF,
    ``e_k = k/(bins − 1)`` for ``k = 1..bins−1``, ``e_0 = −∞`` and ``e_bins = +∞``."""
    check_integer(bins, "bins", 2)
    edges = torch.arange(1, bins, dtype=torch.float64) / (bins - 1)
    cdf = sum(weight * torch.special.ndtr((edges - mean) / std) for weight, mean, std in MIXTURE_1D)
    return DiscreteTable(torch.cat([cdf[:1], cdf.diff(), 1 - cdf[-1:]]))


@register_dataset("histogram-1d", "Seminar 1's 1D data: 5000 binned draws of a 2-Gaussian mixture, values 0..99, 80/20")
def _histogram_1d_data(count: int = 5000, bins: int = 100, seed: int = 42) -> Data:
    return _split("histogram-1d", generate_1d_data(count, bins, seed), bins, histogram_1d(bins))


# -- seminar 2: a picture as a 2D discrete density --------------------------------------------------------------------
@functools.cache
def image_density() -> DiscreteTable:
    """The 60×60 table over (row, column) made from scikit-learn's ``china.jpg`` (see the module's docstring)."""
    from sklearn.datasets import load_sample_image

    rgb = torch.tensor(load_sample_image("china.jpg"), dtype=torch.float64)
    grey = rgb @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    side = IMAGE_SIZE * IMAGE_BLOCK
    top, left = IMAGE_CORNER
    square = grey[top:top + side, left:left + side]
    blocks = square.reshape(IMAGE_SIZE, IMAGE_BLOCK, IMAGE_SIZE, IMAGE_BLOCK).mean(dim=(1, 3))
    weights = (1 - blocks / 255) ** DARKNESS_POWER
    return DiscreteTable(weights / weights.sum())


@register_dataset("image-density-60", "Seminar 2's 2D discrete density: (row, col) pairs from a 60x60 picture, 80/20")
def _image_density_data(count: int = 20000, seed: int = 0) -> Data:
    check_integer(count, "count", 1)
    check_integer(seed, "seed", 0)
    table = image_density()
    outcomes = table.sample(count, torch.Generator().manual_seed(seed))
    return _split("image-density-60", outcomes, IMAGE_SIZE, table)
