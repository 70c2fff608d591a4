"""Activation normalisation, ActNorm (Kingma & Dhariwal, 2018, "Glow", §3.1 and Table 1).

An affine map per channel, the same at every spatial position ``(i, j)``:

    y[:, c, i, j] = x[:, c, i, j] · exp(s_c) + b_c,     log|det ∂y/∂x| = H · W · Σ_c s_c,

with its inverse ``x = (y − b) · exp(−s)``. The code writes the scale as ``exp(s)`` so that it stays positive.

**Data-dependent initialisation**: on the first batch the layer sees in training mode it sets
``s_c = −log std_c`` and ``b_c = −mean_c · exp(s_c)`` from that batch, so that its outputs have zero mean and unit
variance per channel; afterwards ``s`` and ``b`` are ordinary trainable parameters. The ``initialized`` flag is a
buffer, saved and loaded with the weights, so a loaded model is not initialised a second time. Under distributed
training the statistics are averaged over every process, so that all of them start from the same parameters.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dgm.flows.bijection import Bijection


class ActNorm(Bijection):
    """Per-channel scale and shift of inputs ``(N, C, ...)`` (images ``(N, C, H, W)`` or vectors ``(N, C)``),
    initialised from the first training batch (see the module docstring)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps

    def _per_channel(self, parameter: Tensor, x: Tensor) -> Tensor:
        return parameter.view(1, -1, *([1] * (x.dim() - 2)))

    def _log_abs_det(self, x: Tensor) -> Tensor:
        positions = x[0, 0].numel()
        return (positions * self.log_scale.sum()).expand(x.shape[0])

    def _check(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.log_scale.numel():
            raise ValueError(f"ActNorm expects inputs (N, {self.log_scale.numel()}, ...), got {tuple(x.shape)}")

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``s`` and ``b`` so that this batch leaves the layer with zero mean and unit variance per channel."""
        channels_first = x.transpose(0, 1).reshape(x.shape[1], -1)
        moments = torch.stack([channels_first.mean(dim=1), channels_first.pow(2).mean(dim=1)])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(moments)
            moments /= dist.get_world_size()
        mean, second_moment = moments
        std = (second_moment - mean.pow(2)).clamp_min(0).sqrt()
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.shift.copy_(-mean * torch.exp(self.log_scale))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        if self.training and not self.initialized:
            self.initialize(x)
        y = x * torch.exp(self._per_channel(self.log_scale, x)) + self._per_channel(self.shift, x)
        return y, self._log_abs_det(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y)
        x = (y - self._per_channel(self.shift, y)) * torch.exp(-self._per_channel(self.log_scale, y))
        return x, -self._log_abs_det(y)
