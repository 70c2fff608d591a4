"""Planar and radial flows (Rezende & Mohamed, 2015, "Variational Inference with Normalizing Flows", §4.1).

Both are defined in the *generative* direction ``z → x`` (the paper's ``f``), where they are cheap; the
normalizing direction ``x → z`` has no closed form and is computed numerically. Following the conventions of
:mod:`dgm.flows.bijection`, ``inverse`` is the closed-form map and ``forward`` the numerical one.

Planar flow (eq. 10-12), with ``h = tanh``:

    x = z + û h(wᵀz + b),    log|det ∂x/∂z| = log|1 + h'(wᵀz + b) ûᵀw|.

It is invertible when ``wᵀû ≥ −1`` (appendix A.1); the appendix enforces it by the reparametrisation
``û = u + (m(wᵀu) − wᵀu) w/‖w‖²`` with ``m(a) = −1 + log(1 + eᵃ)``, so that ``wᵀû = m(wᵀu) > −1``. Inverting:
``α = wᵀz`` solves the scalar equation ``α + (wᵀû) tanh(α + b) = wᵀx``, whose left side is increasing, and then
``z = x − û tanh(α + b)``.

Radial flow (eq. 14), with ``r = ‖z − z₀‖`` and ``h(α, r) = 1/(α + r)``:

    x = z + β h(α, r)(z − z₀),
    log|det ∂x/∂z| = (D − 1) log(1 + β h) + log(1 + β h + β h'(α, r) r),

invertible when ``β ≥ −α`` (appendix A.2), enforced by ``α = log(1 + e^a) > 0`` and ``β̂ = −α + log(1 + e^β)``.
Inverting: ``x − z₀`` is ``z − z₀`` scaled by ``1 + β/(α + r)``, so ``ρ = ‖x − z₀‖ = r + βr/(α + r)``, a quadratic
``r² + (α + β − ρ) r − αρ = 0`` whose positive root is ``r``.

Parameters enter through a functional core (``planar_generate``, ``planar_normalize``, ``radial_generate``,
``radial_normalize``) that takes them as tensors, either shared (shape ``(D,)``, scalars ``()``) or one set per
example (``(N, D)``, ``(N,)``), so an amortising encoder can supply them; :class:`Planar` and :class:`Radial` hold
free parameters and call the core.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.flows.bijection import Bijection

MAX_SOLVER_STEPS = 100


def solve_monotone(target: Tensor, scale: Tensor, slope: Tensor, shift: Tensor) -> Tensor:
    """The ``y`` with ``y + scale · tanh(slope · y + shift) = target``, elementwise, where ``scale · slope > −1``.

    The left side is increasing (its derivative is ``1 + scale · slope · sech² ≥ 1 + min(0, scale · slope) > 0``) and
    ``|y − target| ≤ |scale|``, so Newton's method safeguarded by bisection on that bracket converges to machine
    precision. The root is found without gradients; one Newton step taken with gradients then gives the exact
    first-order derivatives of the implicit function, ``∂y/∂θ = −(∂g/∂θ)/(∂g/∂y)``, so the normalizing direction of
    a flow can be trained too.
    """
    def residual_and_slope(y):
        activation = torch.tanh(slope * y + shift)
        return y + scale * activation - target, 1 + scale * slope * (1 - activation ** 2)

    with torch.no_grad():
        low, high = target - scale.abs(), target + scale.abs()
        y = target.clone()
        tolerance = 8 * torch.finfo(target.dtype).eps * (1 + target.abs() + scale.abs())
        for _ in range(MAX_SOLVER_STEPS):
            residual, derivative = residual_and_slope(y)
            if (residual.abs() <= tolerance).all():
                break
            high = torch.where(residual > 0, y, high)
            low = torch.where(residual <= 0, y, low)
            newton = y - residual / derivative
            y = torch.where((newton > low) & (newton < high), newton, (low + high) / 2)
    residual, derivative = residual_and_slope(y)
    return y - residual / derivative


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``Σ_j a_j b_j`` over the last dimension, broadcasting shared ``(D,)`` against per-example ``(N, D)``."""
    return (a * b).sum(dim=-1)


# -- planar -----------------------------------------------------------------------------------------------------------
def planar_constrained_u(u: Tensor, w: Tensor) -> Tensor:
    """``û = u + (m(wᵀu) − wᵀu) w/‖w‖²`` with ``m(a) = −1 + log(1 + eᵃ)``, so that ``wᵀû > −1`` (appendix A.1)."""
    w_dot_u = _dot(w, u)
    return u + ((-1 + F.softplus(w_dot_u) - w_dot_u) / _dot(w, w)).unsqueeze(-1) * w


def planar_generate(z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z + û tanh(wᵀz + b)`` and ``log|det ∂x/∂z| = log(1 + (1 − tanh²) wᵀû)`` (eq. 10-12)."""
    activation = torch.tanh(_dot(w, z) + b)
    return z + activation.unsqueeze(-1) * u_hat, torch.log1p((1 - activation ** 2) * _dot(w, u_hat))


def planar_normalize(x: Tensor, u_hat: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The ``z`` with ``planar_generate(z) = x``, by solving ``α + (wᵀû) tanh(α + b) = wᵀx`` for ``α = wᵀz``, and
    ``log|det ∂z/∂x|``."""
    w_dot_u = _dot(w, u_hat)
    alpha = solve_monotone(_dot(w, x), w_dot_u, torch.ones_like(w_dot_u), b)
    activation = torch.tanh(alpha + b)
    return x - activation.unsqueeze(-1) * u_hat, -torch.log1p((1 - activation ** 2) * w_dot_u)


class Planar(Bijection):
    """One planar flow on vectors ``(N, D)`` with free parameters ``u``, ``w``, ``b`` (``û`` is computed from them).

    ``w`` starts random (``N(0, 1/D)``) and ``u = m⁻¹(0) w/‖w‖²`` with ``m⁻¹(0) = log(e − 1)``, the one ``u`` whose
    ``û`` is zero: the layer starts as the identity. (A ``u`` near zero would give ``wᵀû = m(0) = −0.31``, a
    contraction: 32 such layers shrink ``N(0, I)`` a hundredfold.) ``u`` and ``w`` get gradients at once, ``b`` once
    ``û`` has left zero.
    """

    def __init__(self, dim: int):
        super().__init__()
        w = torch.randn(dim) / math.sqrt(dim)
        self.u = nn.Parameter(math.log(math.e - 1) * w / w.dot(w))
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return planar_normalize(x, planar_constrained_u(self.u, self.w), self.w, self.b)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return planar_generate(z, planar_constrained_u(self.u, self.w), self.w, self.b)


class AmortizedPlanar(Bijection):
    """One planar flow on vectors ``(N, D)`` whose parameters ``u``, ``w``, ``b`` are a linear function of the context
    ``(N, context_dim)``, one set per example: the amortised flow posterior of Rezende & Mohamed (2015, §4.2 and
    §6.2), where the encoder's output gives each data point its own flow. The linear map starts at zero apart from
    ``w``'s bias (``N(0, 1/D)``) and ``u``'s bias (the identity start of :class:`Planar`)."""

    def __init__(self, dim: int, context_dim: int):
        super().__init__()
        self.dim = dim
        self.parameters_of_context = nn.Linear(context_dim, 2 * dim + 1)
        nn.init.zeros_(self.parameters_of_context.weight)
        w = torch.randn(dim) / math.sqrt(dim)
        with torch.no_grad():
            self.parameters_of_context.bias.copy_(torch.cat([math.log(math.e - 1) * w / w.dot(w), w, torch.zeros(1)]))

    def planar_parameters(self, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(û, w, b)`` of each example, ``(N, D)``, ``(N, D)``, ``(N,)``."""
        if context is None:
            raise ValueError("an amortized planar flow takes its parameters from a context: pass context=")
        u, w, b = self.parameters_of_context(context).split([self.dim, self.dim, 1], dim=-1)
        return planar_constrained_u(u, w), w, b.squeeze(-1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return planar_normalize(x, *self.planar_parameters(context))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return planar_generate(z, *self.planar_parameters(context))


# -- radial -----------------------------------------------------------------------------------------------------------
def radial_constrained(raw_alpha: Tensor, raw_beta: Tensor) -> tuple[Tensor, Tensor]:
    """``α = log(1 + e^a) > 0`` and ``β̂ = −α + log(1 + e^β) > −α`` (appendix A.2)."""
    alpha = F.softplus(raw_alpha)
    return alpha, -alpha + F.softplus(raw_beta)


def _radial_log_abs_det(r: Tensor, alpha: Tensor, beta: Tensor, dim: int) -> Tensor:
    """``(D − 1) log(1 + βh) + log(1 + βh + βh'r)`` with ``h = 1/(α + r)``, ``h' = −h²``, so the last factor is
    ``1 + βα/(α + r)²``."""
    h = 1 / (alpha + r)
    return (dim - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h ** 2)


def radial_generate(z: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z + β/(α + r) (z − z₀)`` with ``r = ‖z − z₀‖``, and ``log|det ∂x/∂z|`` (eq. 14)."""
    offset = z - z0
    r = offset.norm(dim=-1)
    x = z + (beta / (alpha + r)).unsqueeze(-1) * offset
    return x, _radial_log_abs_det(r, alpha, beta, z.shape[-1])


def radial_normalize(x: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """The ``z`` with ``radial_generate(z) = x``: ``r`` is the positive root of ``r² + (α + β − ρ) r − αρ = 0``
    with ``ρ = ‖x − z₀‖``, taken in the form free of cancellation; then ``z − z₀ = (x − z₀)/(1 + β/(α + r))``."""
    offset = x - z0
    rho = offset.norm(dim=-1)
    linear = alpha + beta - rho
    root = torch.sqrt(linear ** 2 + 4 * alpha * rho)
    r = torch.where(linear > 0, 2 * alpha * rho / (linear + root), (root - linear) / 2)
    z = z0 + offset / (1 + beta / (alpha + r)).unsqueeze(-1)
    return z, -_radial_log_abs_det(r, alpha, beta, x.shape[-1])


class Radial(Bijection):
    """One radial flow on vectors ``(N, D)`` with free parameters ``z₀``, ``a`` and ``β`` (constrained as above).

    ``z₀`` starts at ``N(0, I)``, ``β`` near zero, so the layer starts near the identity.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.z0 = nn.Parameter(torch.randn(dim))
        self.raw_alpha = nn.Parameter(torch.zeros(()))
        self.raw_beta = nn.Parameter(0.01 * torch.randn(()))  # β̂ = softplus(raw_beta) − log 2 ≈ 0

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return radial_normalize(x, self.z0, *radial_constrained(self.raw_alpha, self.raw_beta))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return radial_generate(z, self.z0, *radial_constrained(self.raw_alpha, self.raw_beta))
