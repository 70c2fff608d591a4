"""A stack of radial flows (Rezende & Mohamed, 2015, eq. 14; see :mod:`dgm.flows.planar`).

Each layer contracts or expands space around a point ``z₀``; cheap in the generative direction (reverse-KL fits,
``objective="reverse_kl"`` of the trainer) and, with a closed-form inverse radius, also in the normalizing direction.
"""
from __future__ import annotations

from dgm.core import check_integer, vector_dim
from dgm.flows import Compose, FlowModel
from dgm.flows.planar import Radial
from dgm.registry import register_model


@register_model("radial", "Radial flow (Rezende & Mohamed 2015): K layers z + b(z - z0)/(a + r); forward/reverse KL")
class RadialFlow(FlowModel):
    """``n_layers`` radial flows on vectors ``(D,)``."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 32):
        dim = vector_dim(shape, "radial")
        layers = (Radial(dim) for _ in range(check_integer(n_layers, "n_layers", 1)))
        super().__init__(Compose(*layers))
