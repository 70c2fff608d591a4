"""Coupling layers (NICE, Dinh, Krueger & Bengio, 2015; RealNVP, Dinh, Sohl-Dickstein & Bengio, 2017; neural spline
couplings, Durkan et al., 2019), for examples of any shape.

With a binary mask ``b`` (1 = kept) the layer keeps the masked elements and transforms each other element ``i`` by an
elementwise transform whose parameters are computed from the kept elements only (RealNVP, eq. 9, with the affine law
replaced by any :class:`~dgm.flows.transforms.ElementwiseTransform`):

    y = b ⊙ x + (1 − b) ⊙ τ(x; θ(b ⊙ x)).

Since ``y`` depends on the transformed elements only through ``τ``, the Jacobian is triangular (RealNVP, eq. 6) and
``log|det ∂y/∂x| = Σ_{i: b_i = 0} log τ'(x_i; θ_i)``; since ``b ⊙ y = b ⊙ x`` the inverse (eqs. 7-8) recomputes the
same parameters from ``y`` and applies ``τ⁻¹``, as cheap as the forward map.

A conditional coupling computes ``θ(b ⊙ x, c)`` from a context ``c`` as well, concatenated to the conditioner's input
along dimension 1 (conditional MAF, Papamakarios et al., 2017, §3.4, with a coupling in place of MADE). The context does
not change which elements ``θ`` may depend on, so for each fixed ``c`` the Jacobian stays triangular and the inverse
recomputes the same parameters.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.flows.bijection import Bijection
from dgm.flows.transforms import ElementwiseTransform
from dgm.nn.mlp import mlp


class Coupling(Bijection):
    """Coupling of examples of shape ``mask.shape``: ``mask`` holds 0/1 (1 = kept, at least one of each).

    ``conditioner`` is any module mapping the masked input ``b ⊙ x`` of shape ``(N, *shape)`` to
    ``(N, k · shape[0], *shape[1:])`` with ``k = transform.params_per_element``; the output is read as ``(N, k,
    *shape)``, parameter ``j`` of element ``i`` at ``[:, j, *i]``. Give the conditioner a zero last layer to make the
    coupling start as the identity. Only the transformed elements pass through the transform.

    With ``context_size > 0`` the coupling is conditional: it needs a context of shape ``(N, context_size,
    *shape[1:])`` (``(N, context_dim)`` for vectors, ``(N, context_channels, H, W)`` for images), and the conditioner
    receives ``b ⊙ x`` and the context concatenated along dimension 1. With ``context_size = 0`` it ignores any context.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module, transform: ElementwiseTransform, context_size: int = 0):
        super().__init__()
        if mask.dim() < 1 or not torch.all((mask == 0) | (mask == 1)):
            raise ValueError(f"mask must be a tensor of 0s and 1s with the shape of one example, got shape "
                             f"{tuple(mask.shape)} with values {mask.unique().tolist()}")
        if mask.all() or not mask.any():
            raise ValueError("mask must keep some elements and transform others (it holds only 0s or only 1s)")
        self.register_buffer("mask", mask.float())
        self.register_buffer("transformed", torch.nonzero(mask.flatten() == 0)[:, 0])
        self.conditioner = conditioner
        self.transform = transform
        self.context_size = check_integer(context_size, "context_size", 0)

    def _conditioner_input(self, x: Tensor, context: Tensor | None) -> Tensor:
        """``b ⊙ x``, followed along dimension 1 by the context if the coupling is conditional."""
        kept = x * self.mask
        if not self.context_size:
            return kept
        expected = (len(x), self.context_size, *self.mask.shape[1:])
        if context is None or tuple(context.shape) != expected:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"this coupling is conditional: it needs a context of shape {expected} "
                             f"(N, context_size, *shape[1:]), got {got}")
        return torch.cat([kept, context], dim=1)

    def _parameters_of_transformed(self, x: Tensor, context: Tensor | None) -> Tensor:
        """``θ(b ⊙ x, c)`` of the transformed elements, shape ``(N, k, number transformed)``."""
        params = self.conditioner(self._conditioner_input(x, context))
        expected = (len(x), self.transform.params_per_element * self.mask.shape[0], *self.mask.shape[1:])
        if tuple(params.shape) != expected:
            raise ValueError(f"the conditioner must output shape {expected} (N, k * shape[0], *shape[1:]) with "
                             f"k = {self.transform.params_per_element}, got {tuple(params.shape)}")
        return params.reshape(len(x), self.transform.params_per_element, -1)[:, :, self.transformed]

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        params = self._parameters_of_transformed(x, context)
        flat = x.flatten(1)
        step = self.transform.inverse if inverse else self.transform.forward
        values, log_derivative = step(flat[:, self.transformed], params)
        return flat.index_copy(1, self.transformed, values).view_as(x), log_derivative.sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, inverse=True)


def mlp_coupling(mask: Tensor, hidden: Sequence[int], transform: ElementwiseTransform,
                 context_dim: int = 0) -> Coupling:
    """A coupling of vectors ``(N, D)`` conditioned by an MLP ``D + context_dim → hidden → k·D`` whose last layer
    starts at zero, so that the coupling starts as the identity; ``context_dim > 0`` makes it conditional on contexts
    ``(N, context_dim)``."""
    dim = mask.numel()
    conditioner = mlp(dim + context_dim, hidden, transform.params_per_element * dim, zero_last=True)
    return Coupling(mask, conditioner, transform, context_dim)
