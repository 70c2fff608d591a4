"""RealNVP for vectors (Dinh, Sohl-Dickstein & Bengio, 2017): a stack of affine couplings with alternating masks.

Layer ``k`` keeps the coordinates ``j`` with ``j + k`` even and transforms the others (for 2D data: first ``x₂`` given
``x₁``, then ``x₁`` given ``x₂``, ...), so that every coordinate is transformed by every other layer (section 3.5 of
the paper, the checkerboard mask in one dimension). The default size (about 15 000 parameters for 2D data) is
chosen to fit 2D toy densities such as the two moons within a minute of CPU training.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from dgm.flows import AffineCoupling, Compose, FlowModel
from dgm.registry import register_model


def alternating_mask(dim: int, parity: int) -> torch.Tensor:
    """The mask ``b_j = 1`` for ``j + parity`` even: the coordinates a coupling keeps."""
    return (torch.arange(dim) + parity) % 2 == 0


@register_model("realnvp", "RealNVP: affine coupling flow with alternating masks, exact likelihood (vectors)")
class RealNVP(FlowModel):
    """RealNVP on vectors of shape ``(D,)``, ``D ≥ 2``: ``n_layers`` affine couplings, each conditioned by an MLP of
    widths ``hidden`` whose log-scale is soft-clamped to ``±max_log_scale`` (see :mod:`dgm.flows.coupling`)."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 8, hidden: Sequence[int] = (40, 40),
                 max_log_scale: float = 2.0):
        if len(shape) != 1:
            raise ValueError(f"RealNVP takes vectors of shape (D,), got shape {tuple(shape)}; "
                             "multi-scale image RealNVP is not yet implemented")
        dim = shape[0]
        if dim < 2:
            raise ValueError(f"RealNVP needs at least 2 dimensions to split between its couplings, got shape {shape}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        super().__init__(Compose(*(AffineCoupling(alternating_mask(dim, k), hidden, max_log_scale)
                                   for k in range(n_layers))))
