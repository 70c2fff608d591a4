"""FFJORD for vectors (Grathwohl et al., 2019): a continuous normalizing flow with a time-dependent MLP, trained by
maximum likelihood with the Hutchinson trace estimator (see :mod:`dgm.flows.continuous`).

The default size follows FFJORD's 2D toys (three hidden layers of 64 tanh units, dopri5 at tolerances 1e-5); the
flow's length ``time`` is fixed (1 by default) rather than learned. ``trace="exact"`` has no variance and costs two
vector-Jacobian products for 2D data against Hutchinson's one.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from dgm.core import vector_dim
from dgm.flows import Compose, FlowModel
from dgm.flows.continuous import ContinuousFlow, TimeMLP
from dgm.registry import register_model


@register_model("ffjord", "FFJORD: continuous normalizing flow (neural ODE, Hutchinson or exact trace), vectors")
class FFJORD(FlowModel):
    """A continuous flow on vectors ``(D,)`` whose dynamics are an MLP of widths ``hidden`` on ``[x, t]``; the ODE
    options are those of :class:`~dgm.flows.continuous.ContinuousFlow`."""

    def __init__(self, shape: tuple[int, ...], hidden: Sequence[int] = (64, 64, 64), time: float = 1.0,
                 trace: str = "hutchinson", noise: str = "gaussian", solver: str = "dopri5", atol: float = 1e-5,
                 rtol: float = 1e-5, adjoint: bool = False):
        dim = vector_dim(shape, "ffjord")
        flow = ContinuousFlow(TimeMLP(dim, hidden), time, trace, noise, solver, atol, rtol, adjoint)
        super().__init__(Compose(flow))

    def layer_trajectory(self, points: Tensor, direction: str = "normalizing", steps: int = 8) -> list[Tensor]:
        """The points at ``steps + 1`` evenly spaced times of the ODE (see :meth:`FlowModel.layer_trajectory`)."""
        super().layer_trajectory(points[:1], direction)  # validates the input and the direction
        return self.bijection.bijections[0].trajectory(self.check(points), steps, direction == "generative")
