"""Invertible 1x1 convolution (Kingma & Dhariwal, 2018, "Glow", §3.2), plain and LU-decomposed.

A learned linear map ``W`` of the channels, the same at every spatial position: ``y[:, :, i, j] = W x[:, :, i, j]``.
It generalises the fixed channel permutations of RealNVP. Its log-determinant is (Glow, eq. 9)

    log|det ∂y/∂x| = H · W · log|det W|,

and the inverse applies ``W⁻¹``. ``W`` starts as a random rotation (a random orthogonal matrix, ``log|det W| = 0``).

- :class:`InvertibleConv1x1` learns ``W`` itself; ``log|det W|`` costs ``O(C³)`` (``torch.linalg.slogdet``).
- :class:`LUInvertibleConv1x1` learns ``W = P L (U + diag(sign(s) · exp(log|s|)))`` (Glow, eq. 10) with a fixed
  permutation ``P``, a unit lower-triangular ``L``, a strictly upper-triangular ``U`` and fixed signs ``sign(s)``;
  then ``log|det W| = Σ log|s|`` costs ``O(C)``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dgm.flows.bijection import Bijection


def random_rotation(channels: int) -> Tensor:
    """A random orthogonal ``(C, C)`` matrix (QR decomposition of a standard normal matrix, torch's generator)."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    return torch.linalg.qr(torch.randn(channels, channels))[0]


class _ChannelMixing(Bijection):
    """``y = W x`` over the channel axis of inputs ``(N, C, ...)``; subclasses say how ``W`` and ``log|det W|``
    are computed."""

    def weight(self) -> Tensor:
        raise NotImplementedError

    def log_abs_det_weight(self) -> Tensor:
        raise NotImplementedError

    def _check(self, x: Tensor, channels: int) -> None:
        if x.dim() < 2 or x.shape[1] != channels:
            raise ValueError(f"{type(self).__name__} expects inputs (N, {channels}, ...), got {tuple(x.shape)}")

    def _mix(self, matrix: Tensor, x: Tensor) -> Tensor:
        self._check(x, matrix.shape[0])
        return torch.einsum("ij,nj...->ni...", matrix, x)

    def _log_abs_det(self, x: Tensor) -> Tensor:
        return (x[0, 0].numel() * self.log_abs_det_weight()).expand(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(self.weight(), x), self._log_abs_det(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(torch.linalg.inv(self.weight()), y), -self._log_abs_det(y)


class InvertibleConv1x1(_ChannelMixing):
    """Glow's invertible 1x1 convolution with an unconstrained weight ``W`` (``C x C``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.matrix = nn.Parameter(random_rotation(channels))

    def weight(self) -> Tensor:
        return self.matrix

    def log_abs_det_weight(self) -> Tensor:
        return torch.linalg.slogdet(self.matrix)[1]


class LUInvertibleConv1x1(_ChannelMixing):
    """Glow's invertible 1x1 convolution in LU form, ``W = P L (U + diag(sign(s) exp(log|s|)))`` (eq. 10)."""

    def __init__(self, channels: int):
        super().__init__()
        permutation, lower, upper = torch.linalg.lu(random_rotation(channels))
        diagonal = upper.diagonal()
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), diagonal=-1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(upper * self.lower_mask.T)
        self.log_abs_diagonal = nn.Parameter(diagonal.abs().log())

    def weight(self) -> Tensor:
        identity = torch.eye(len(self.sign), dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + identity
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * self.log_abs_diagonal.exp())
        return self.permutation @ lower @ upper

    def log_abs_det_weight(self) -> Tensor:
        return self.log_abs_diagonal.sum()
