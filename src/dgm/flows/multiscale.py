"""Squeeze and the multi-scale architecture with factored-out variables (Dinh, Sohl-Dickstein & Bengio, 2017,
"Density estimation using Real NVP", §3.6; Kingma & Dhariwal, 2018, "Glow", Fig. 2).

**Squeeze** (space-to-depth) turns an image ``(C, H, W)`` into ``(4C, H/2, W/2)``: each 2x2 block of pixels becomes
four channels of one position. It only moves values, so ``log|det| = 0``.

**Multi-scale**: one scale applies a flow at the current resolution, squeezes, and *factors out* half of the
channels: they are final latent variables, modelled directly by the base distribution, while the other half goes on
to the next, coarser scale (RealNVP eq. 13-14):

    h⁽ⁱ⁾ → (z⁽ⁱ⁺¹⁾, h⁽ⁱ⁺¹⁾) = split(squeeze(f⁽ⁱ⁾(h⁽ⁱ⁾))),     z = (z⁽¹⁾, …, z⁽ᴸ⁾).

:class:`MultiScale` writes this recursively: ``forward`` squeezes, applies ``squeezed`` (the flow at the half
resolution), sends the first half of the channels through ``inner`` (the next scale), keeps the second half as it
is, and unsqueezes the result. The latent ``z`` then has the shape of ``x``, each factored-out half sitting where its
scale left it, so a standard normal base on ``z`` gives the factored-out halves their density ``N(0, I)`` in
``log p(x)`` and the model samples by drawing one ``z`` of the image's shape. The log-determinant is the sum of the
scales' log-determinants; the factor-out itself is an identity. A context image ``(N, C', H, W)`` is squeezed along
with ``x``, so that the layers of each scale see it at their own resolution, ``(4C', H/2, W/2)`` and so on.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dgm.flows.bijection import Bijection


def _check_even_image(x: Tensor, what: str) -> None:
    if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"{what} needs images (N, C, H, W) with even H and W, got {tuple(x.shape)}")


def check_scales(shape: tuple[int, ...], scales: int, squeezes: int, model: str) -> None:
    """``ValueError`` unless ``shape`` is ``(C, H, W)`` and ``H`` and ``W`` can be halved ``squeezes`` times."""
    if len(shape) != 3:
        raise ValueError(f"{model} takes images of shape (C, H, W), got shape {tuple(shape)}")
    if isinstance(scales, bool) or not isinstance(scales, int) or scales < 1:
        raise ValueError(f"scales must be a positive integer, got {scales!r}")
    if shape[1] % 2 ** squeezes or shape[2] % 2 ** squeezes:
        raise ValueError(f"{model} with {scales} scales squeezes the image {squeezes} times, so H and W must be "
                         f"divisible by {2 ** squeezes}; got shape {tuple(shape)}")


def squeeze(x: Tensor) -> Tensor:
    """``(N, C, H, W) → (N, 4C, H/2, W/2)``: channel ``4c + 2a + b`` holds pixel ``(2i + a, 2j + b)`` of channel c."""
    _check_even_image(x, "squeeze")
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(y: Tensor) -> Tensor:
    """The inverse of :func:`squeeze`: ``(N, 4C, H, W) → (N, C, 2H, 2W)``."""
    if y.dim() != 4 or y.shape[1] % 4:
        raise ValueError(f"unsqueeze needs images (N, C, H, W) with C divisible by 4, got {tuple(y.shape)}")
    n, c, h, w = y.shape
    return y.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


class Squeeze(Bijection):
    """Space-to-depth as a bijection, ``(N, C, H, W) → (N, 4C, H/2, W/2)`` with ``log|det| = 0`` (RealNVP §3.6)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return squeeze(x), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return unsqueeze(y), y.new_zeros(y.shape[0])


class MultiScale(Bijection):
    """One scale of the multi-scale architecture on images ``(N, C, H, W)``, output of the same shape: squeeze,
    ``squeezed`` on ``(4C, H/2, W/2)``, then ``inner`` on the first ``2C`` channels while the last ``2C`` are factored
    out (see the module docstring). Without ``inner`` nothing continues: every channel goes to the latent. A context
    image is squeezed once and handed to ``squeezed`` and ``inner``."""

    def __init__(self, squeezed: Bijection, inner: Bijection | None = None):
        super().__init__()
        self.squeezed = squeezed
        self.inner = inner

    def _through_inner(self, y: Tensor, context: Tensor | None, direction: str) -> tuple[Tensor, Tensor]:
        if self.inner is None:
            return y, y.new_zeros(y.shape[0])
        kept, factored_out = y.chunk(2, dim=1)
        kept, log_abs_det = getattr(self.inner, direction)(kept, context)
        return torch.cat([kept, factored_out], dim=1), log_abs_det

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        context = None if context is None else squeeze(context)
        y, log_abs_det = self.squeezed(squeeze(x), context)
        y, inner_log_abs_det = self._through_inner(y, context, "forward")
        return unsqueeze(y), log_abs_det + inner_log_abs_det

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        context = None if context is None else squeeze(context)
        y, inner_log_abs_det = self._through_inner(squeeze(z), context, "inverse")
        x, log_abs_det = self.squeezed.inverse(y, context)
        return unsqueeze(x), log_abs_det + inner_log_abs_det
