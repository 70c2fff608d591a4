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
- Both directions take an optional ``context`` ``(N, ...)`` that conditions the map: for each fixed context ``c`` the
  map ``x → f(x; c)`` is a bijection, and the log-determinant is with respect to ``x`` alone, so a flow of such
  layers is a conditional density (conditional MAF, Papamakarios, Pavlakou & Murray, 2017, §3.4):

      log p(x | c) = log p_z(f(x; c)) + log |det ∂f(x; c)/∂x|.

  The context is, for example, a class label, the encoder's output ``h`` that conditions an IAF posterior (Kingma et
  al., 2016, Algorithm 1) or the image that a variational dequantizer dequantizes (Ho et al., 2019, §3.1). Couplings
  and MAF/IAF layers built with a context size condition on it and refuse to run without it; every other layer (and
  a layer built without a context size) ignores it, so :class:`Compose` hands the same context to every layer.
"""
from __future__ import annotations

from torch import Tensor, nn


class Bijection(nn.Module):
    """An invertible map ``x → z`` that reports ``log|det ∂z/∂x|`` per example (see the module conventions)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Normalizing direction: ``(z, log|det ∂z/∂x|)``, the log-determinant of shape ``(N,)``."""
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Generative direction: ``(x, log|det ∂x/∂z|)``, the log-determinant of shape ``(N,)``."""
        raise NotImplementedError


class Compose(Bijection):
    """``f = f_K ∘ … ∘ f_1``: forward applies the bijections in the given order, inverse in reverse order.

    The chain rule makes the log-determinant of the composition the sum of the layers' log-determinants. The
    ``context`` goes to every layer.
    """

    def __init__(self, *bijections: Bijection):
        super().__init__()
        self.bijections = nn.ModuleList(bijections)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_abs_det = x.new_zeros(x.shape[0])
        for bijection in self.bijections:
            x, layer_log_abs_det = bijection(x, context)
            log_abs_det = log_abs_det + layer_log_abs_det
        return x, log_abs_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_abs_det = z.new_zeros(z.shape[0])
        for bijection in reversed(self.bijections):
            z, layer_log_abs_det = bijection.inverse(z, context)
            log_abs_det = log_abs_det + layer_log_abs_det
        return z, log_abs_det

    def trajectory(self, x: Tensor, context: Tensor | None = None) -> list[Tensor]:
        """The points ``[x, f_1(x), f_2(f_1(x)), …, f(x)]``, one more than there are bijections."""
        points = [x]
        for bijection in self.bijections:
            points.append(bijection(points[-1], context)[0])
        return points
