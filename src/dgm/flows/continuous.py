"""Continuous normalizing flows: Neural ODE (Chen et al., 2018) and FFJORD (Grathwohl et al., 2019).

The flow is the solution map of an ODE ``dx/dt = f(x(t), t)`` from ``t = 0`` (data) to ``t = T`` (latent). Its
log-determinant follows the instantaneous change of variables (Chen et al., Theorem 1; Grathwohl et al., eq. 4):

    d log|det ∂x(t)/∂x(0)| / dt = tr(∂f/∂x(t)),   so   log|det ∂z/∂x| = ∫₀ᵀ tr(∂f/∂x(t)) dt,

integrated alongside ``x`` by one ODE solve (``torchdiffeq.odeint``); the generative direction integrates from ``T``
back to ``0`` and gets the negative integral. The trace is

- ``"exact"``: ``Σ_i ∂f_i/∂x_i``, one vector-Jacobian product per dimension (cheap for low dimensions), or
- ``"hutchinson"``: FFJORD's unbiased estimate ``εᵀ(∂f/∂x)ε`` with ``E[εεᵀ] = I`` (Gaussian or Rademacher ``ε``), one
  vector-Jacobian product, with ``ε`` drawn once per solve (§3.1) so that the dynamics stay a fixed ODE.

The Hutchinson estimate serves training only: in eval mode or without gradients (evaluation, sampling, plots) the
trace is exact, so that ``log_prob`` is exact up to the solver's tolerance. ``adjoint=True`` computes gradients by
the adjoint method (``torchdiffeq.odeint_adjoint``, Chen et al. §2: memory independent of the number of solver
steps); ``solver``, ``atol`` and ``rtol`` are passed to torchdiffeq.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint
from torchdiffeq._impl.odeint import SOLVERS  # torchdiffeq's own table of its solvers (pinned version)

from dgm.flows.bijection import Bijection
from dgm.nn.mlp import mlp

TRACES = ("exact", "hutchinson")
NOISES = ("gaussian", "rademacher")


def exact_trace(velocity: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    """``tr(∂velocity/∂x)`` of each example, ``(N,)``, by one vector-Jacobian product per dimension of ``x``
    (``(N, D)``, ``velocity`` computed from it)."""
    rows = [torch.autograd.grad(velocity[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0][:, i]
            for i in range(x.shape[1])]
    return torch.stack(rows, dim=1).sum(dim=1)


def hutchinson_trace(velocity: Tensor, x: Tensor, noise: Tensor, create_graph: bool) -> Tensor:
    """``εᵀ(∂velocity/∂x)ε`` of each example, ``(N,)``: unbiased for the trace when ``E[εεᵀ] = I``."""
    noise_times_jacobian = torch.autograd.grad(velocity, x, noise, create_graph=create_graph, retain_graph=True)[0]
    return (noise_times_jacobian * noise).flatten(1).sum(dim=1)


def draw_noise(like: Tensor, kind: str) -> Tensor:
    """Gaussian ``N(0, I)`` or Rademacher (±1 with probability ½) noise of the shape of ``like``."""
    if kind == "gaussian":
        return torch.randn_like(like)
    return torch.randint_like(like, 2) * 2 - 1


class TimeMLP(nn.Module):
    """Dynamics ``f(x, t)`` for vectors: an MLP of ``[x, t]`` with smooth (tanh) activations, as FFJORD's toys."""

    def __init__(self, dim: int, hidden: Sequence[int]):
        super().__init__()
        self.network = mlp(dim + 1, hidden, dim, activation=nn.Tanh)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.network(torch.cat([x, t.expand(len(x), 1).to(x)], dim=1))


class _AugmentedDynamics(nn.Module):
    """``d(x, log|det|)/dt = (f(x, t), tr ∂f/∂x)``: the ODE that one solve integrates."""

    def __init__(self, dynamics: nn.Module):
        super().__init__()
        self.dynamics = dynamics
        self.noise: Tensor | None = None  # None: exact trace; else the Hutchinson noise of the latest solve, kept
        #                                   for the adjoint method's backward solve

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x = state[0]
        create_graph = torch.is_grad_enabled()  # off when evaluating without gradients
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            velocity = self.dynamics(t, x)
            if self.noise is None:
                trace = exact_trace(velocity, x, create_graph)
            else:
                trace = hutchinson_trace(velocity, x, self.noise, create_graph)
        return velocity if create_graph else velocity.detach(), trace if create_graph else trace.detach()


class ContinuousFlow(Bijection):
    """A continuous normalizing flow ``x(0) = x → x(T) = z`` with the dynamics ``dynamics(t, x)`` (see the module
    docstring for ``trace``, ``noise``, ``adjoint``, ``solver``, ``atol`` and ``rtol``)."""

    def __init__(self, dynamics: nn.Module, time: float = 1.0, trace: str = "hutchinson", noise: str = "gaussian",
                 solver: str = "dopri5", atol: float = 1e-5, rtol: float = 1e-5, adjoint: bool = False):
        super().__init__()
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {', '.join(TRACES)}, got {trace!r}")
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of torchdiffeq's {', '.join(SOLVERS)}, got {solver!r}")
        if not time > 0 or not atol > 0 or not rtol > 0:
            raise ValueError(f"time, atol and rtol must be positive, got {time}, {atol}, {rtol}")
        self.augmented = _AugmentedDynamics(dynamics)
        self.time, self.trace, self.noise = time, trace, noise
        self.solver, self.atol, self.rtol, self.adjoint = solver, atol, rtol, adjoint

    def _solve(self, x: Tensor, start: float, end: float) -> tuple[Tensor, Tensor]:
        """``x(end)`` from ``x(start) = x`` and ``∫_start^end tr(∂f/∂x) dt``."""
        hutchinson = self.trace == "hutchinson" and self.training and torch.is_grad_enabled()
        self.augmented.noise = draw_noise(x, self.noise) if hutchinson else None
        times = torch.tensor([start, end], dtype=x.dtype, device=x.device)
        state = (x, x.new_zeros(x.shape[0]))
        solve = odeint_adjoint if self.adjoint and torch.is_grad_enabled() else odeint
        options = {"adjoint_params": tuple(self.augmented.parameters())} if solve is odeint_adjoint else {}
        path, log_abs_det = solve(self.augmented, state, times, method=self.solver, atol=self.atol,
                                  rtol=self.rtol, **options)
        return path[-1], log_abs_det[-1]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._solve(x, 0.0, self.time)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._solve(z, self.time, 0.0)

    @torch.no_grad()
    def trajectory(self, points: Tensor, steps: int = 8, generative: bool = False) -> list[Tensor]:
        """The points at ``steps + 1`` evenly spaced times from ``0`` to ``T`` (from ``T`` to ``0`` if
        ``generative``), without the log-determinant."""
        times = torch.linspace(0.0, self.time, steps + 1, dtype=points.dtype, device=points.device)
        times = times.flip(0) if generative else times
        path = odeint(self.augmented.dynamics, points, times, method=self.solver, atol=self.atol, rtol=self.rtol)
        return list(path.unbind(0))
