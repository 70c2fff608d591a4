"""Maps between the discrete images of dgm and the binary or continuous values that some models need.

Every function takes a tensor of integer values ``0 .. levels-1`` (any real or integer dtype) and returns float32
(or the input's floating dtype), following the data convention of :mod:`dgm.core`.

- Binarization, fixed: the course's rule ``x > 128`` on 8-bit values (HW1, HW3, HW4 of the OzonMasters DGM course).
- Binarization, stochastic: each pixel becomes a Bernoulli draw with success probability ``x / (levels-1)``
  (Salakhutdinov & Murray, 2008, "On the quantitative analysis of deep belief networks").
  :class:`DynamicBinarization` redraws every training batch afresh.
- Quantization to ``bits`` bits: ``floor(x · 2^bits / levels_in)``, which is ``floor(x / 2^(8-bits))`` for 8-bit input.
- Uniform dequantization (Theis, van den Oord & Bethge, 2016, "A note on the evaluation of generative models", §3.1):
  ``y = (x + u) / levels`` with ``u ~ U[0,1)^D``, so that a density ``p`` on ``[0,1)^D`` defines the discrete model
  ``P(x) = ∫_{cell(x)} p(y) dy`` on the cell ``cell(x) = [x, x+1)/levels`` of volume ``levels^-D``. Hence

      log P(x) = log ∫_{[0,1)^D} p((x+u)/levels) du − D log levels ≥ E_u[log p((x+u)/levels)] − D log levels,

  by Jensen's inequality: a dequantized flow's ``E_u log p(y) − D log levels`` is a lower bound on ``log P(x)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dgm.core import check_data, check_integer


def _describe(x) -> str:
    return f"a tensor of dtype {x.dtype} and shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


def _as_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _check_discrete(x: Tensor, levels: int) -> None:
    """``ValueError`` unless ``x`` is a tensor ``(N, ...)`` of integers ``0 .. levels-1`` in any real dtype."""
    if not isinstance(x, Tensor) or x.is_complex() or x.dim() == 0:
        raise ValueError(f"x must be a real tensor of shape (N, ...) holding integers 0..{levels - 1}, "
                         f"got {_describe(x)}")
    if x.is_floating_point():
        check_data(x, tuple(x.shape[1:]), levels)
    elif x.numel() and (x.min() < 0 or x.max() > levels - 1):
        raise ValueError(f"x must hold integers in 0..{levels - 1}, "
                         f"got values in [{x.min().item()}, {x.max().item()}]")


def _uniform_in_cells(cell: Tensor, levels: int, generator: torch.Generator | None) -> Tensor:
    """``(cell + u) / levels`` with ``u ~ U[0,1)``: a uniform point of ``[cell, cell+1) / levels``.

    ``cell + u`` is kept below ``cell + 1``: in float32, ``255 + u`` rounds up to 256 once ``u > 1 - 2^-17``.
    """
    noise = torch.rand(cell.shape, generator=generator, dtype=cell.dtype, device=cell.device)
    return torch.minimum(cell + noise, torch.nextafter(cell + 1, cell)) / levels


def threshold_binarize(x: Tensor, threshold: float = 128) -> Tensor:
    """``1`` where ``x > threshold``, else ``0``, for 8-bit values ``0..255`` (the course's rule is ``x > 128``)."""
    _check_discrete(x, 256)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 255:
        raise ValueError(f"threshold must be a number in [0, 255], got {threshold!r}")
    return (x > threshold).to(_as_float(x).dtype)


def dynamic_binarize(x: Tensor, levels: int = 256, generator: torch.Generator | None = None) -> Tensor:
    """Independent Bernoulli draws in ``{0, 1}`` with success probabilities ``x / (levels-1)``."""
    check_integer(levels, "levels", 2)
    _check_discrete(x, levels)
    return torch.bernoulli(_as_float(x) / (levels - 1), generator=generator)


def quantized_levels(bits: int, levels_in: int = 256) -> int:
    """``2^bits``, the number of levels :func:`quantize` gives, if ``bits >= 1`` and ``2^bits <= levels_in``."""
    check_integer(levels_in, "levels_in", 2)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= levels_in.bit_length() - 1:
        raise ValueError(f"bits must be an integer >= 1 with 2**bits <= levels_in = {levels_in}, got {bits!r}")
    return 2 ** bits


def quantize(x: Tensor, bits: int, levels_in: int = 256) -> Tensor:
    """``floor(x · 2^bits / levels_in)``: values ``0 .. 2^bits - 1``; equal shares if ``2^bits`` divides levels_in."""
    levels_out = quantized_levels(bits, levels_in)
    _check_discrete(x, levels_in)
    return torch.div(_as_float(x) * levels_out, levels_in, rounding_mode="floor")


def uniform_dequantize(x: Tensor, levels: int, generator: torch.Generator | None = None) -> Tensor:
    """``(x + u) / levels`` with ``u ~ U[0,1)``: a uniform point of the cell ``[x, x+1) / levels`` inside ``[0,1)``.

    See the module docstring for the bound ``log P(x) ≥ E_u[log p((x+u)/levels)] − D log levels``.
    """
    check_integer(levels, "levels", 2)
    _check_discrete(x, levels)
    return _uniform_in_cells(_as_float(x), levels, generator)


def dequantize_course(x: Tensor, nbins: int = 256, generator: torch.Generator | None = None) -> Tensor:
    """The course's HW3 ``dequantize``: ``(x · (nbins-1) + u) / nbins``, ``u ~ U[0,1)``, for ``x`` in ``[0, 1]``.

    For ``x = k / (nbins-1)`` (images scaled by ``1/(nbins-1)``) this is ``uniform_dequantize(k, nbins)``.
    """
    check_integer(nbins, "nbins", 2)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor with values in [0, 1], got {_describe(x)}")
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise ValueError(f"x must hold values in [0, 1], got values in [{x.min().item():g}, {x.max().item():g}]")
    return _uniform_in_cells(x * (nbins - 1), nbins, generator)


class DynamicBinarization:
    """The ``train_batch`` of a dynamically binarized data set (Salakhutdinov & Murray, 2008): every training batch
    is a fresh Bernoulli draw of the grey images it names.

    The data convention keeps one tensor of ``{0, 1}`` values per split, so the training tensor of such a data set is
    one fixed seeded draw, :attr:`fixed_draw`. Called with the indices of a batch, the transform draws those images
    again with torch's global generator (the one the trainer checkpoints, so resumed runs draw the same noise).
    """

    def __init__(self, grey: Tensor, levels: int = 256, seed: int = 0):
        check_integer(levels, "levels", 2)
        _check_discrete(grey, levels)
        self.grey, self.levels = grey, levels
        self.fixed_draw = dynamic_binarize(grey, levels, torch.Generator().manual_seed(seed))

    def __call__(self, indices: Tensor) -> Tensor:
        if indices.dtype != torch.int64 or indices.dim() != 1:
            raise ValueError(f"indices must be a 1-D int64 tensor of example numbers, got {_describe(indices)}")
        return dynamic_binarize(self.grey[indices], self.levels)
