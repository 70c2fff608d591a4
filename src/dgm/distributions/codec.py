"""The codec between discrete data and the interval ``[-1, 1]`` that networks and likelihoods work on.

Data hold integers ``x ∈ {0, …, L-1}`` (``L = levels``, see :mod:`dgm.core`). Networks read them, and the discretized
likelihoods place them, on ``[-1, 1]`` by the affine map of PixelCNN++ (Salimans et al., 2017, §2.1) and DDPM (Ho et
al., 2020, §3.3, "image data consisting of integers in {0, 1, …, 255} scaled linearly to [−1, 1]"):

    x̃ = 2x/(L-1) - 1,        x = round((x̃ + 1)(L-1)/2), clamped to 0..L-1.

Neighbouring values lie ``2h`` apart with ``h = 1/(L-1)``, so value ``x`` owns the bin ``[x̃ - h, x̃ + h]``; the
inverse map sends every point of that bin (and, through the clamp, everything beyond the end bins) back to ``x``.
Pictures and the feature networks of the sample-quality metrics read the same integers on the 8-bit scale,
``255 x/(L-1)`` (:func:`to_8bit_scale`).
"""
from __future__ import annotations

from torch import Tensor

from dgm.core import check_integer


def to_interval(x: Tensor, levels: int) -> Tensor:
    """Integers ``0..levels-1`` to their centres ``2x/(levels-1) - 1`` on ``[-1, 1]``, elementwise."""
    return x * (2 / (check_integer(levels, "levels", 2) - 1)) - 1


def to_levels(y: Tensor, levels: int) -> Tensor:
    """Points of the real line to the value ``0..levels-1`` whose bin holds them (the nearest centre), elementwise,
    in ``y``'s dtype; the inverse of :func:`to_interval` on the centres."""
    top = check_integer(levels, "levels", 2) - 1
    return ((y + 1) * (top / 2)).round().clamp(0, top)


def to_8bit_scale(x: Tensor, levels: int) -> Tensor:
    """Integers ``0..levels-1`` to ``255 x/(levels-1)`` on the 8-bit scale ``[0, 255]`` of pictures and of the
    feature networks of sample-quality metrics (not rounded: round for display), elementwise."""
    return x * (255 / (check_integer(levels, "levels", 2) - 1))


def half_bin_width(levels: int) -> float:
    """``h = 1/(levels-1)``: half the distance between neighbouring values on ``[-1, 1]``."""
    return 1.0 / (check_integer(levels, "levels", 2) - 1)
