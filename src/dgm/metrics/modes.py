"""Mode coverage and sample quality on mixtures of Gaussians, the 2D benchmark of the GAN literature (8 Gaussians on
a ring, 25 on a grid: Metz et al., 2017; Srivastava et al., 2017, "VEEGAN", §5.1; Lin et al., 2018, "PacGAN").

The rule, as VEEGAN states it: a sample is **high quality** if it lies within three standard deviations of the
nearest mode's centre (here: Euclidean distance ``≤ 3 σ`` for isotropic components of standard deviation σ); each
high-quality sample is assigned to that nearest mode. A mode is **covered** when at least ``min_count``
high-quality samples are assigned to it. VEEGAN and PacGAN count modes with a threshold of this kind; we default to
``min_count = 1`` (any high-quality sample), and report the count per mode so a stricter threshold can be applied.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dgm.core import check_integer

QUALITY_STDS = 3.0


def mode_metrics(samples: Tensor, centres: Tensor, std: float, min_count: int = 1) -> dict:
    """``modes_covered`` (count), ``modes`` (total), ``high_quality`` (share of samples within 3 std of their
    nearest centre) and ``mode_counts`` (high-quality samples per mode) of 2D ``samples``."""
    if samples.dim() != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(f"samples must have shape (N, {centres.shape[1]}), got {tuple(samples.shape)}")
    check_integer(min_count, "min_count", 1)
    distances = torch.cdist(samples.double(), centres.double())
    nearest_distance, nearest = distances.min(1)
    good = nearest_distance <= QUALITY_STDS * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return {"modes_covered": int((counts >= min_count).sum()), "modes": len(centres),
            "high_quality": good.double().mean().item(), "mode_counts": counts.tolist()}
