"""A stack of planar flows (Rezende & Mohamed, 2015, eq. 10-12; see :mod:`dgm.flows.planar`).

Cheap in the generative direction, so suited to reverse-KL fits of the 2D energies
(``fit(model, "energy-u1", objective="reverse_kl")``, §6.1 of the paper, which uses up to 32 layers); its density at
given points, and so forward-KL training, costs a scalar root-finding per layer.
"""
from __future__ import annotations

from dgm.flows.model import StackedFlowModel
from dgm.flows.planar import Planar
from dgm.registry import register_model


@register_model("planar", "Planar flow (Rezende & Mohamed 2015): K layers z + u tanh(w.z + b); forward or reverse KL")
class PlanarFlow(StackedFlowModel):
    """``n_layers`` planar flows on vectors ``(D,)``, each starting as the identity."""

    layer = Planar
