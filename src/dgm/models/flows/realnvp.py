"""RealNVP for vectors (Dinh, Sohl-Dickstein & Bengio, 2017): a stack of affine couplings with alternating masks.

Layer ``k`` keeps the coordinates ``j`` with ``j + k`` even and transforms the others (for 2D data: first ``x₂`` given
``x₁``, then ``x₁`` given ``x₂``, ...), so that every coordinate is transformed by every other layer (section 3.5 of
the paper, the checkerboard mask in one dimension). Each coupling is ``y = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s) + t)``
(eq. 9) with the soft-clamped log-scale of :class:`~dgm.flows.transforms.Affine`. The default size (about 15 000
parameters for 2D data) is chosen to fit 2D toy densities such as the two moons within a minute of CPU training.
Multi-scale RealNVP for images is the model ``realnvp-multiscale``.
"""
from __future__ import annotations

from collections.abc import Sequence

from dgm.core import check_integer, vector_dim
from dgm.flows import Compose, FlowModel
from dgm.flows.coupling import mlp_coupling
from dgm.flows.permutation import alternating_mask
from dgm.flows.transforms import Affine
from dgm.registry import register_model


@register_model("realnvp", "RealNVP: affine coupling flow with alternating masks, exact likelihood (vectors)")
class RealNVP(FlowModel):
    """RealNVP on vectors of shape ``(D,)``, ``D ≥ 2``: ``n_layers`` affine couplings, each conditioned by an MLP of
    widths ``hidden`` whose log-scale is soft-clamped to ``±max_log_scale``."""

    def __init__(self, shape: tuple[int, ...], n_layers: int = 8, hidden: Sequence[int] = (40, 40),
                 max_log_scale: float = 2.0):
        dim = vector_dim(shape, "RealNVP")
        transform = Affine(max_log_scale)
        super().__init__(Compose(*(mlp_coupling(alternating_mask(dim, k), hidden, transform)
                                   for k in range(check_integer(n_layers, "n_layers", 1)))))
