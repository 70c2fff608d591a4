"""Masked autoregressive flow (Papamakarios, Pavlakou & Murray, 2017, "Masked Autoregressive Flow for Density
Estimation") for vectors.

Each layer is ``z_i = τ(x_i; θ_i(x_{<i}))`` with MADE computing every ``θ_i`` in one pass
(:mod:`dgm.flows.autoregressive`); with the affine transform this is eq. 4 of the paper,
``z_i = (x_i − μ_i) exp(−α_i)`` up to the sign convention of the log-scale. The ordering is reversed between layers.
Density in one pass per layer, sampling in ``D`` passes.
``transform="spline"`` gives the autoregressive rational-quadratic neural spline flow (Durkan et al., 2019).
"""
from __future__ import annotations

from dgm.flows.autoregressive import AutoregressiveFlowModel, MaskedAutoregressive
from dgm.registry import register_model


@register_model("maf", "MAF: masked autoregressive flow with MADE layers, one-pass density, exact likelihood (vectors)")
class MAF(AutoregressiveFlowModel):
    """MAF on vectors: each layer computes ``z`` from ``x`` in one pass (options in the base)."""

    layer = MaskedAutoregressive
