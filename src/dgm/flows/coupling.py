"""The affine coupling layer of RealNVP (Dinh, Sohl-Dickstein & Bengio, 2017, "Density estimation using Real NVP").

With a binary mask ``b`` the layer keeps the masked coordinates and transforms the others affinely, with a scale and
shift computed from the kept ones only (eq. 9):

    y = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s(b ⊙ x)) + t(b ⊙ x)).

Its Jacobian is triangular (eq. 6), so ``log|det ∂y/∂x| = Σ_j (1 − b_j) s_j(b ⊙ x)``, and since ``b ⊙ y = b ⊙ x``
the inverse (eq. 7-8) is as cheap as the forward map. The code uses the equal form
``y = x ⊙ exp((1 − b) ⊙ s) + (1 − b) ⊙ t`` and its inverse

    x = (y − (1 − b) ⊙ t(b ⊙ y)) ⊙ exp(−(1 − b) ⊙ s(b ⊙ y)).

Stabilisation: the raw log-scale ``r`` of the conditioner is soft-clamped, ``s = c · tanh(r / c)`` with
``c = max_log_scale``. Near zero ``s ≈ r``, so the clamp does not slow early training, while each layer's scale stays
in ``[e^(−c), e^c]`` however large ``r`` grows.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dgm.flows.bijection import Bijection
from dgm.nn.mlp import mlp


class AffineCoupling(Bijection):
    """RealNVP affine coupling of vectors ``(N, D)``: ``mask`` (shape ``(D,)``, values 0/1) marks the kept inputs.

    The conditioner is an MLP ``D → hidden → 2D`` (first half ``r``, second half ``t``) whose last layer starts at
    zero, so the layer starts as the identity.
    """

    def __init__(self, mask: Tensor, hidden: Sequence[int], max_log_scale: float = 2.0):
        super().__init__()
        if mask.dim() != 1 or not torch.all((mask == 0) | (mask == 1)):
            raise ValueError(f"mask must be a 1-D tensor of 0s and 1s, got shape {tuple(mask.shape)} "
                             f"with values {mask.unique().tolist()}")
        if max_log_scale <= 0:
            raise ValueError(f"max_log_scale must be positive, got {max_log_scale}")
        self.register_buffer("mask", mask.float())
        self.max_log_scale = max_log_scale
        dim = mask.numel()
        self.conditioner = mlp(dim, hidden, 2 * dim, zero_last=True)

    def _log_scale_and_shift(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        """``(1 − b) ⊙ s`` and ``(1 − b) ⊙ t`` from the kept coordinates ``b ⊙ x``."""
        raw_log_scale, shift = self.conditioner(kept).chunk(2, dim=1)
        log_scale = self.max_log_scale * torch.tanh(raw_log_scale / self.max_log_scale)
        transformed = 1 - self.mask
        return transformed * log_scale, transformed * shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._log_scale_and_shift(self.mask * x)
        return x * torch.exp(log_scale) + shift, log_scale.sum(dim=1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._log_scale_and_shift(self.mask * y)
        return (y - shift) * torch.exp(-log_scale), -log_scale.sum(dim=1)
