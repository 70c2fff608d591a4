"""Neural spline flow (Durkan, Bekasov, Murray & Papamakarios, 2019, "Neural Spline Flows") for vectors.

Each layer transforms coordinates by monotone rational-quadratic splines (§3.1; :class:`~dgm.flows.transforms.
RationalQuadraticSpline`) on ``[-bound, bound]`` with identity tails. The coupling variant (RQ-NSF (C), §3.2) keeps
alternating halves of the coordinates and computes the splines of the others with an MLP; the autoregressive variant
(RQ-NSF (AR), §3.3) computes the spline of each coordinate from the earlier ones with MADE, the ordering reversed
between layers.
"""
from __future__ import annotations

from collections.abc import Sequence

from dgm.core import check_integer, vector_dim
from dgm.flows import Compose, FlowModel, RationalQuadraticSpline, alternating_mask, mlp_coupling
from dgm.flows.autoregressive import MaskedAutoregressive, autoregressive_flow
from dgm.registry import register_model


@register_model("nsf", "Neural spline flow: rational-quadratic spline couplings (or autoregressive), exact likelihood")
class NSF(FlowModel):
    """NSF on vectors of shape ``(D,)``: ``n_layers`` spline layers of ``bins`` bins on ``[-bound, bound]``,
    conditioned by MLPs (couplings, ``D ≥ 2``) or, with ``autoregressive=True``, by MADE networks of widths
    ``hidden``."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 6, hidden: Sequence[int] = (64, 64), bins: int = 8,
                 bound: float = 4.0, autoregressive: bool = False):
        transform = RationalQuadraticSpline(bins, bound)
        if autoregressive:
            if len(shape) != 1:
                raise ValueError(f"NSF takes vectors of shape (D,), got shape {tuple(shape)}")
            bijection = autoregressive_flow(MaskedAutoregressive, check_integer(shape[0], "D", 1), n_layers, hidden,
                                            transform)
        else:
            dim = vector_dim(shape, "NSF")
            bijection = Compose(*(mlp_coupling(alternating_mask(dim, k), hidden, transform)
                                  for k in range(check_integer(n_layers, "n_layers", 1))))
        super().__init__(bijection)
