"""RealNVP for images with the multi-scale architecture (Dinh, Sohl-Dickstein & Bengio, 2017, §3.6 and §4.1),
the model of the course's homework 3, task 3 (binarized MNIST with ``nbins = 2``).

The data ``x ∈ {0 … L−1}^(C×H×W)`` are dequantized to ``y = (x + u) / L`` and mapped by the course's
:class:`~dgm.flows.dequantization.LogitTransform`; then each scale but the last applies ``couplings`` affine couplings
with alternating checkerboard masks, squeezes, applies ``couplings`` affine couplings with alternating channel masks
and factors out half of the channels; the last scale applies ``couplings + 1`` checkerboard couplings (RealNVP uses
3, 3 and 4). Each coupling is followed by an ActNorm, as in the course's notebook (the paper uses batch
normalisation). The conditioners are residual networks with ``blocks`` blocks of ``channels`` channels
(:func:`~dgm.nn.resnet.resnet`), the course's ``SimpleResnet``.
"""
from __future__ import annotations

from dgm.flows.actnorm import ActNorm
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.dequantization import DequantizedFlow, LogitTransform, make_dequantizer
from dgm.flows.image_coupling import channel_mask, checkerboard_mask, resnet_coupling
from dgm.flows.multiscale import MultiScale, check_scales
from dgm.flows.transforms import Affine
from dgm.registry import register_model


@register_model("realnvp-multiscale",
                "RealNVP for images: multi-scale affine couplings, dequantized, lower bound (course HW3, MNIST)")
class RealNVPMultiScale(DequantizedFlow):
    """See the module docstring; ``max_log_scale`` soft-clamps each coupling's log-scale
    (:class:`~dgm.flows.transforms.Affine`), ``alpha`` is the logit transform's margin and ``dequantization`` is
    ``"uniform"`` or ``"variational"`` (:mod:`dgm.flows.dequantization`)."""

    def __init__(self, shape: tuple[int, ...], levels: int, scales: int = 2, couplings: int = 3, channels: int = 32,
                 blocks: int = 2, alpha: float = 0.05, max_log_scale: float = 2.0,
                 dequantization: str = "uniform"):
        check_scales(shape, scales, scales - 1, "realnvp-multiscale")

        def coupling_stack(make_mask, shape, count: int) -> list[Bijection]:
            """``count`` couplings of alternating ``make_mask`` parity, each followed by an ActNorm."""
            return [layer for k in range(count)
                    for layer in (resnet_coupling(make_mask(shape, k % 2), Affine(max_log_scale), channels, blocks),
                                  ActNorm(shape[0]))]

        def scale(shape: tuple[int, int, int], scales: int) -> Compose:
            if scales == 1:
                return Compose(*coupling_stack(checkerboard_mask, shape, couplings + 1))
            c, h, w = shape
            squeezed = Compose(*coupling_stack(channel_mask, (4 * c, h // 2, w // 2), couplings))
            inner = scale((2 * c, h // 2, w // 2), scales - 1)
            return Compose(*coupling_stack(checkerboard_mask, shape, couplings), MultiScale(squeezed, inner))

        super().__init__(Compose(LogitTransform(alpha), scale(tuple(shape), scales)),
                         make_dequantizer(dequantization, shape))
