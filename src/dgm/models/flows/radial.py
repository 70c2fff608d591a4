"""A stack of radial flows (Rezende & Mohamed, 2015, eq. 14; see :mod:`dgm.flows.planar`).

Each layer contracts or expands space around a point ``z₀``; cheap in the generative direction (reverse-KL fits, the
trainer's ``objective="reverse_kl"``) and, with a closed-form inverse radius, also in the normalizing direction.
"""
from __future__ import annotations

from dgm.flows.model import StackedFlowModel
from dgm.flows.planar import Radial
from dgm.registry import register_model


@register_model("radial", "Radial flow (Rezende & Mohamed 2015): K layers z + b(z - z0)/(a + r); forward/reverse KL")
class RadialFlow(StackedFlowModel):
    """``n_layers`` radial flows on vectors ``(D,)``."""

    layer = Radial
