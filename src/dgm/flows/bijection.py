"""Invertible maps with tractable Jacobian determinants, the building blocks of normalizing flows.

A flow models data ``x`` as ``x = f⁻¹(z)`` with ``z ~ N(0, I)``; by the change of variables formula (lecture 5;
Dinh et al., 2017, eq. 2)

    log p(x) = log p_z(f(x)) + log |det ∂f(x)/∂x|.

Conventions, followed by every bijection of :mod:`dgm.flows`:

- ``x`` lives in data space and ``z`` (or ``y`` for one layer's output) in latent space; ``forward`` is the
  *normalizing* direction ``x → z`` and ``inverse`` the *generative* direction ``z → x``.
- Both directions return ``(output, log_abs_det)`` where ``log_abs_det`` has shape ``(N,)``: the log of the absolute
  Jacobian determinant of the map just applied, summed over every non-batch dimension. Hence for any bijection
  ``forward(x)[1] + inverse(forward(x)[0])[1] == 0``.
"""
from __future__ import annotations

from torch import Tensor, nn


class Bijection(nn.Module):
    """An invertible map ``x → z`` that reports ``log|det ∂z/∂x|`` per example (see the module conventions)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Normalizing direction: ``(z, log|det ∂z/∂x|)``, the log-determinant of shape ``(N,)``."""
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Generative direction: ``(x, log|det ∂x/∂z|)``, the log-determinant of shape ``(N,)``."""
        raise NotImplementedError


class Compose(Bijection):
    """``f = f_K ∘ … ∘ f_1``: forward applies the bijections in the given order, inverse in reverse order.

    The chain rule makes the log-determinant of the composition the sum of the layers' log-determinants.
    """

    def __init__(self, *bijections: Bijection):
        super().__init__()
        self.bijections = nn.ModuleList(bijections)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_abs_det = x.new_zeros(x.shape[0])
        for bijection in self.bijections:
            x, layer_log_abs_det = bijection(x)
            log_abs_det = log_abs_det + layer_log_abs_det
        return x, log_abs_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        log_abs_det = z.new_zeros(z.shape[0])
        for bijection in reversed(self.bijections):
            z, layer_log_abs_det = bijection.inverse(z)
            log_abs_det = log_abs_det + layer_log_abs_det
        return z, log_abs_det

    def trajectory(self, x: Tensor) -> list[Tensor]:
        """The points ``[x, f_1(x), f_2(f_1(x)), …, f(x)]``, one more than there are bijections."""
        points = [x]
        for bijection in self.bijections:
            points.append(bijection(points[-1])[0])
        return points
