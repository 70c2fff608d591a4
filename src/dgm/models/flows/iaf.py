"""Inverse autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, 2016, "Improved Variational
Inference with Inverse Autoregressive Flow") as a density model of vectors.

Each layer generates ``x_i = τ(z_i; θ_i(z_{<i}))`` (eq. 10 with the affine transform, ``x = μ + σ ⊙ z``) with MADE
computing every ``θ_i`` in one pass: sampling takes one pass per layer, the density ``D`` passes
(:class:`~dgm.flows.autoregressive.InverseAutoregressive`, the MAF layer with the directions swapped). The
ordering is reversed between layers. Training by maximum likelihood is therefore ``D`` times slower than MAF's;
IAF shines where samples and their densities are needed together (variational posteriors, reverse KL).
"""
from __future__ import annotations

from dgm.flows.autoregressive import AutoregressiveFlowModel, InverseAutoregressive
from dgm.registry import register_model


@register_model("iaf", "IAF: inverse autoregressive flow with MADE layers, one-pass sampling, exact likelihood")
class IAF(AutoregressiveFlowModel):
    """IAF on vectors: each layer computes ``x`` from ``z`` in one pass (options as for ``maf``, in the base)."""

    layer = InverseAutoregressive
