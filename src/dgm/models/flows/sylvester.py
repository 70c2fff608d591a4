"""A stack of Sylvester flows (van den Berg et al., 2018, eq. 13-15; see :mod:`dgm.flows.sylvester`).

``variant`` picks the orthogonal matrix of every layer: ``"orthogonal"`` (``hidden`` = M columns),
``"householder"`` (``reflections`` per layer) or ``"triangular"`` (identity and reversal permutation alternating,
as in the paper). Cheap in the generative direction (reverse-KL fits); the normalizing direction solves M scalar
equations per layer.
"""
from __future__ import annotations

from dgm.core import check_integer, vector_dim
from dgm.flows import Compose, FlowModel
from dgm.flows.sylvester import Sylvester
from dgm.registry import register_model


@register_model("sylvester", "Sylvester flow (van den Berg et al. 2018): orthogonal, householder or triangular variant")
class SylvesterFlow(FlowModel):
    """``n_layers`` Sylvester flows on vectors ``(D,)``."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 16, variant: str = "orthogonal",
                 hidden: int | None = None, reflections: int = 2):
        dim = vector_dim(shape, "sylvester")
        layers = (Sylvester(dim, variant, hidden, reflections, reverse=k % 2 == 1)
                  for k in range(check_integer(n_layers, "n_layers", 1)))
        super().__init__(Compose(*layers))
