"""One-dimensional signals quantised by mu-law companding to 256 levels, the data of WaveNet; nothing downloads.

WaveNet (van den Oord et al., 2016, §2.2, eq. 1) compands a signal ``x ∈ [-1, 1]`` by

    f(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ),    μ = levels - 1 = 255,

and quantises ``f(x)`` uniformly to ``levels`` values, which spends more levels near zero where audio spends most of
its time. Examples have shape ``(1, T)`` (one channel over time) and hold integers ``0..levels-1``.

- ``waveforms``: synthetic sounds generated from a seed: each is a sum of 1 to 3 sinusoids with random periods
  (8 to 64 steps, log-uniform), phases and amplitudes, under a random exponential decay, plus white noise of
  standard deviation 0.01. The label is the number of sinusoids minus one (for class-conditional models).
- ``mnist1d``: Greydanus' MNIST-1D (2020), 4000/1000 sequences of 40 steps with digit labels, generated offline by
  ``mnist1d.data.make_dataset`` with its default arguments, divided by 6 (the signals lie in about ``[-5.5, 4.6]``)
  and clipped to ``[-1, 1]`` before companding.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from dgm.core import check_integer
from dgm.data.base import Data
from dgm.registry import register_dataset

LEVELS = 256
PERIODS = (8.0, 64.0)       # shortest and longest period of a synthetic sinusoid, in steps
MAX_DECAY = 3.0             # the envelope falls by at most e^-3 over the sequence
NOISE_STD = 0.01
MNIST1D_SCALE = 6.0


def mu_law_encode(x: Tensor, levels: int = LEVELS) -> Tensor:
    """Signal ``x`` in ``[-1, 1]`` → integers ``0..levels-1`` (as floats): eq. 1, then uniform quantisation."""
    mu = levels - 1
    companded = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1)) / math.log1p(mu)
    return torch.round((companded + 1) / 2 * mu)


def mu_law_decode(q: Tensor, levels: int = LEVELS) -> Tensor:
    """Integers ``0..levels-1`` → the signal value at the centre of each companded level (the inverse of eq. 1)."""
    mu = levels - 1
    companded = q / mu * 2 - 1
    return torch.sign(companded) * torch.expm1(companded.abs() * math.log1p(mu)) / mu


def synthetic_waveforms(count: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` signals ``(count, length)`` in ``[-1, 1]`` and their labels (number of sinusoids - 1)."""
    components = 3
    labels = torch.randint(0, components, (count,), generator=generator)
    active = (torch.arange(components) <= labels[:, None]).double()                      # (count, 3)
    log_low, log_high = math.log(PERIODS[0]), math.log(PERIODS[1])
    periods = torch.exp(log_low + (log_high - log_low) * torch.rand(count, components, 1, generator=generator,
                                                                     dtype=torch.float64))
    phases = 2 * math.pi * torch.rand(count, components, 1, generator=generator, dtype=torch.float64)
    amplitudes = (0.3 + 0.7 * torch.rand(count, components, 1, generator=generator, dtype=torch.float64))
    amplitudes = amplitudes * active[..., None]
    decay = MAX_DECAY * torch.rand(count, 1, generator=generator, dtype=torch.float64)
    t = torch.arange(length, dtype=torch.float64)
    tones = (amplitudes * torch.sin(2 * math.pi * t / periods + phases)).sum(dim=1)
    signal = tones / amplitudes.sum(dim=1) * torch.exp(-decay * t / length)
    signal = signal + NOISE_STD * torch.randn(count, length, generator=generator, dtype=torch.float64)
    return signal.clamp(-1, 1), labels


@register_dataset("waveforms", "synthetic decaying sums of 1-3 sinusoids with noise, mu-law 256 levels, (1, T)")
def waveforms(length: int = 256, train_size: int = 8000, test_size: int = 2000, seed: int = 0) -> Data:
    """Synthetic signals of ``length`` steps, mu-law quantised to 256 levels, labelled by number of sinusoids - 1."""
    check_integer(length, "length", 2)
    check_integer(train_size, "train_size", 1)
    check_integer(test_size, "test_size", 1)
    generator = torch.Generator().manual_seed(seed)
    signal, labels = synthetic_waveforms(train_size + test_size, length, generator)
    quantised = mu_law_encode(signal).float().unsqueeze(1)
    return Data("waveforms", quantised[:train_size], quantised[train_size:], levels=LEVELS,
                train_labels=labels[:train_size], test_labels=labels[train_size:])


@register_dataset("mnist1d", "MNIST-1D (Greydanus 2020), 4000/1000 sequences of 40 steps, mu-law 256 levels, (1, 40)")
def mnist1d() -> Data:
    """MNIST-1D built offline from its default arguments (seed 42), companded to 256 levels, with digit labels."""
    from mnist1d.data import get_dataset_args, make_dataset
    arrays = make_dataset(get_dataset_args())

    def quantise(x: np.ndarray) -> Tensor:
        return mu_law_encode(torch.from_numpy(x / MNIST1D_SCALE).clamp(-1, 1)).float().unsqueeze(1)

    return Data("mnist1d", quantise(arrays["x"]), quantise(arrays["x_test"]), levels=LEVELS,
                train_labels=torch.from_numpy(arrays["y"]).long(),
                test_labels=torch.from_numpy(arrays["y_test"]).long())
