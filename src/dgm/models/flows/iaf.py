"""Inverse autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, 2016, "Improved Variational
Inference with Inverse Autoregressive Flow") as a density model of vectors.

Each layer generates ``x_i = τ(z_i; θ_i(z_{<i}))`` (eq. 10 with the affine transform, ``x = μ + σ ⊙ z``) with MADE
computing every ``θ_i`` in one pass: sampling takes one pass per layer, the density ``D`` passes
(:class:`~dgm.flows.autoregressive.InverseAutoregressive`, the MAF layer with the directions swapped). The
ordering is reversed between layers. Training by maximum likelihood is therefore ``D`` times slower than MAF's;
IAF shines where samples and their densities are needed together (variational posteriors, reverse KL).
"""
from __future__ import annotations

from collections.abc import Sequence

from dgm.core import check_integer
from dgm.flows import FlowModel
from dgm.flows.autoregressive import InverseAutoregressive, autoregressive_flow
from dgm.flows.transforms import elementwise_transform
from dgm.registry import register_model


@register_model("iaf", "IAF: inverse autoregressive flow with MADE layers, one-pass sampling, exact likelihood")
class IAF(FlowModel):
    """IAF on vectors of shape ``(D,)``: ``n_layers`` MADE layers of widths ``hidden`` with the elementwise
    ``transform`` ``"affine"`` or ``"spline"`` (options as for ``maf``).
    ``objective``, ``target`` and ``anneal_steps`` as in :class:`~dgm.flows.model.FlowModel` (forward or reverse KL)."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 5, hidden: Sequence[int] = (64, 64),
                 transform: str = "affine", max_log_scale: float = 2.0, bins: int = 8, bound: float = 4.0,
                 objective: str = "forward_kl", target: str | None = None, anneal_steps: int = 0):
        if len(shape) != 1:
            raise ValueError(f"IAF takes vectors of shape (D,), got shape {tuple(shape)}")
        transform = elementwise_transform(transform, max_log_scale=max_log_scale, bins=bins, bound=bound)
        super().__init__(autoregressive_flow(InverseAutoregressive, check_integer(shape[0], "D", 1), n_layers,
                                             hidden, transform), objective, target, anneal_steps)
