"""Sylvester normalizing flows (van den Berg, Hasenclever, Tomczak & Welling, 2018), eq. 13 onwards.

A Sylvester flow generalises the planar flow from one hidden unit to ``M ≤ D``, in the generative direction
``z → x`` (eq. 13, with ``A = QR`` and ``B = R̃Qᵀ``, eq. 14):

    x = z + Q R h(R̃ Qᵀ z + b),

``Q`` a ``D × M`` matrix with orthonormal columns, ``R`` and ``R̃`` upper triangular ``M × M``, ``h = tanh``. By
Sylvester's determinant identity ``det(I_D + AB) = det(I_M + BA)`` and ``QᵀQ = I_M`` the Jacobian determinant is that
of a triangular matrix (eq. 15):

    log|det ∂x/∂z| = Σ_m log|1 + h'(a_m) R̃_mm R_mm|,    a = R̃ Qᵀ z + b.

The map is invertible when ``R_mm R̃_mm > −1/‖h'‖_∞ = −1`` (Theorem 2); as in the paper the diagonals pass through
``tanh``, so ``|R_mm|, |R̃_mm| < 1``. The three variants differ in ``Q`` (§3.2-3.3):

- ``orthogonal``: ``M ≤ D`` orthonormal columns, here from the QR decomposition of a free ``D × M`` matrix (the paper
  uses Björck iterations towards the same set);
- ``householder``: ``M = D``, ``Q`` a product of ``H`` Householder reflections ``I − 2vvᵀ/‖v‖²``;
- ``triangular``: ``M = D``, ``Q`` the identity or the reversal permutation (alternating between layers).

The normalizing direction has no closed form but reduces to ``M`` scalar equations: the part of ``x`` orthogonal to
the columns of ``Q`` is that of ``z``, and ``y = Qᵀz`` solves ``y + R h(R̃ y + b) = Qᵀx``, a triangular system solved
from its last row up, each row an increasing scalar equation (:func:`dgm.flows.planar.solve_monotone`).

Parameters enter through a functional core (``sylvester_generate``, ``sylvester_normalize``) that takes ``Q``,
``R``, ``R̃``, ``b`` as tensors, shared or one set per example (leading batch dimension), so that an amortising
encoder can supply them as in the paper's VAE; :class:`Sylvester` holds free parameters and calls the core.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dgm.flows.bijection import Bijection
from dgm.flows.planar import solve_monotone

VARIANTS = ("orthogonal", "householder", "triangular")


def triangular_with_tanh_diagonal(raw: Tensor) -> Tensor:
    """The upper triangle of ``raw`` (``(..., M, M)``) with ``tanh`` of its diagonal, so that ``|R_mm| < 1``."""
    upper = torch.triu(raw, diagonal=1)
    return upper + torch.diag_embed(torch.tanh(torch.diagonal(raw, dim1=-2, dim2=-1)))


def orthonormal_columns(raw: Tensor) -> Tensor:
    """``Q`` of the reduced QR decomposition of ``raw`` (``(..., D, M)``, ``M ≤ D``): orthonormal columns."""
    return torch.linalg.qr(raw, mode="reduced").Q


def householder_product(vectors: Tensor) -> Tensor:
    """``H_1 H_2 … H_K`` with ``H_k = I − 2 v_k v_kᵀ/‖v_k‖²`` for ``vectors`` ``(..., K, D)``: a ``D × D`` orthogonal
    matrix."""
    dim = vectors.shape[-1]
    product = torch.eye(dim, dtype=vectors.dtype, device=vectors.device).expand(*vectors.shape[:-2], dim, dim)
    for v in vectors.unbind(dim=-2):
        unit = v / v.norm(dim=-1, keepdim=True)
        product = product - 2 * (product @ unit.unsqueeze(-1)) * unit.unsqueeze(-2)
    return product


def _times(matrix: Tensor, vectors: Tensor) -> Tensor:
    """``matrix @ v`` for each row ``v`` of ``vectors`` (``(N, K)``), with a shared ``(J, K)`` or per-example
    ``(N, J, K)`` matrix."""
    return (matrix @ vectors.unsqueeze(-1)).squeeze(-1)


def _log_abs_det(pre_activation: Tensor, r: Tensor, r_tilde: Tensor) -> Tensor:
    diagonal_product = torch.diagonal(r, dim1=-2, dim2=-1) * torch.diagonal(r_tilde, dim1=-2, dim2=-1)
    return torch.log1p((1 - torch.tanh(pre_activation) ** 2) * diagonal_product).sum(dim=-1)


def sylvester_generate(z: Tensor, q: Tensor, r: Tensor, r_tilde: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z + Q R tanh(R̃ Qᵀ z + b)`` and ``log|det ∂x/∂z|`` (eq. 13-15) for ``z`` ``(N, D)``, ``Q`` ``(D, M)``,
    ``R``, ``R̃`` ``(M, M)`` upper triangular, ``b`` ``(M,)`` (or each with a leading ``N``)."""
    pre_activation = _times(r_tilde, _times(q.transpose(-2, -1), z)) + b
    x = z + _times(q, _times(r, torch.tanh(pre_activation)))
    return x, _log_abs_det(pre_activation, r, r_tilde)


def sylvester_normalize(x: Tensor, q: Tensor, r: Tensor, r_tilde: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The ``z`` with ``sylvester_generate(z) = x`` and ``log|det ∂z/∂x|``, by back-substitution in
    ``y + R tanh(R̃ y + b) = Qᵀx``, one increasing scalar equation per row, last row first."""
    target = _times(q.transpose(-2, -1), x)
    size = target.shape[-1]
    solved: list[Tensor] = []            # y_m for m = M−1, M−2, … (built in reverse)
    activations: list[Tensor] = []       # tanh(a_m) in the same order
    for m in reversed(range(size)):
        later_y = torch.stack(solved[::-1], dim=-1) if solved else target[..., :0]
        later_h = torch.stack(activations[::-1], dim=-1) if activations else target[..., :0]
        shift = b[..., m] + (r_tilde[..., m, m + 1:] * later_y).sum(-1)
        row_target = target[..., m] - (r[..., m, m + 1:] * later_h).sum(-1)
        y_m = solve_monotone(row_target, r[..., m, m], r_tilde[..., m, m], shift)
        solved.append(y_m)
        activations.append(torch.tanh(r_tilde[..., m, m] * y_m + shift))
    h = torch.stack(activations[::-1], dim=-1)
    y = torch.stack(solved[::-1], dim=-1)
    z = x - _times(q, _times(r, h))
    return z, -_log_abs_det(_times(r_tilde, y) + b, r, r_tilde)


class Sylvester(Bijection):
    """One Sylvester flow on vectors ``(N, D)`` with free parameters.

    ``variant`` picks ``Q`` (see the module docstring): ``"orthogonal"`` with ``hidden`` columns (``M``, default
    ``D``), ``"householder"`` with ``reflections`` Householder vectors, ``"triangular"`` with the identity, or the
    reversal permutation when ``reverse``. ``R`` starts small so that the layer starts near the identity.
    """

    def __init__(self, dim: int, variant: str = "orthogonal", hidden: int | None = None, reflections: int = 2,
                 reverse: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        hidden = dim if hidden is None else hidden
        if variant != "orthogonal" and hidden != dim:
            raise ValueError(f"the {variant} variant has M = D = {dim} hidden units, got hidden={hidden}")
        if not 1 <= hidden <= dim:
            raise ValueError(f"hidden (M) must lie in 1..{dim}, got {hidden}")
        if variant == "householder" and reflections < 1:
            raise ValueError(f"reflections must be at least 1, got {reflections}")
        self.variant = variant
        if variant == "orthogonal":
            self.raw_q = nn.Parameter(torch.randn(dim, hidden))
        elif variant == "householder":
            self.householder_vectors = nn.Parameter(torch.randn(reflections, dim))
        else:
            permutation = torch.arange(dim).flip(0) if reverse else torch.arange(dim)
            self.register_buffer("permutation_matrix", torch.eye(dim)[:, permutation])
        self.raw_r = nn.Parameter(0.01 * torch.randn(hidden, hidden))
        self.raw_r_tilde = nn.Parameter(torch.randn(hidden, hidden) / hidden ** 0.5)
        self.b = nn.Parameter(torch.zeros(hidden))

    def parameters_of_the_map(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(Q, R, R̃, b)`` with the constraints applied, as the functional core takes them."""
        if self.variant == "orthogonal":
            q = orthonormal_columns(self.raw_q)
        elif self.variant == "householder":
            q = householder_product(self.householder_vectors)
        else:
            q = self.permutation_matrix
        return q, triangular_with_tanh_diagonal(self.raw_r), triangular_with_tanh_diagonal(self.raw_r_tilde), self.b

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return sylvester_normalize(x, *self.parameters_of_the_map())

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return sylvester_generate(z, *self.parameters_of_the_map())
