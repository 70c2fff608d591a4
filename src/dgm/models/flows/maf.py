"""Masked autoregressive flow (Papamakarios, Pavlakou & Murray, 2017, "Masked Autoregressive Flow for Density
Estimation") for vectors.

Each layer is ``z_i = τ(x_i; θ_i(x_{<i}))`` with MADE computing every ``θ_i`` in one pass
(:mod:`dgm.flows.autoregressive`); with the affine transform this is eq. 4 of the paper,
``z_i = (x_i − μ_i) exp(−α_i)`` up to the sign convention of the log-scale. The ordering is reversed between layers.
Density in one pass per layer, sampling in ``D`` passes.
``transform="spline"`` gives the autoregressive rational-quadratic neural spline flow (Durkan et al., 2019).
"""
from __future__ import annotations

from collections.abc import Sequence

from dgm.core import check_integer
from dgm.flows import FlowModel
from dgm.flows.autoregressive import MaskedAutoregressive, autoregressive_flow
from dgm.flows.transforms import elementwise_transform
from dgm.registry import register_model


class AutoregressiveFlowModel(FlowModel):
    """A flow of ``n_layers`` autoregressive ``layer`` s (MADE of widths ``hidden``) on vectors of shape ``(D,)``,
    with the elementwise ``transform`` ``"affine"`` (log-scale soft-clamped to ``±max_log_scale``) or ``"spline"``
    (``bins`` bins on ``[-bound, bound]``). MAF and IAF differ in their ``layer`` alone."""

    layer: type

    def __init__(self, shape: tuple[int, ...], n_layers: int = 5, hidden: Sequence[int] = (64, 64),
                 transform: str = "affine", max_log_scale: float = 2.0, bins: int = 8, bound: float = 4.0):
        if len(shape) != 1:
            raise ValueError(f"{type(self).__name__} takes vectors of shape (D,), got shape {tuple(shape)}")
        transform = elementwise_transform(transform, max_log_scale=max_log_scale, bins=bins, bound=bound)
        super().__init__(autoregressive_flow(self.layer, check_integer(shape[0], "D", 1), n_layers, hidden,
                                             transform))


@register_model("maf", "MAF: masked autoregressive flow with MADE layers, one-pass density, exact likelihood (vectors)")
class MAF(AutoregressiveFlowModel):
    """MAF on vectors: each layer computes ``z`` from ``x`` in one pass (options in the base)."""

    layer = MaskedAutoregressive
