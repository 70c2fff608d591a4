"""Glow (Kingma & Dhariwal, 2018, "Glow: generative flow with invertible 1x1 convolutions") for 8-bit images.

The data ``x ∈ {0 … L−1}^(C×H×W)`` are dequantized to ``y = (x + u) / L`` and mapped by the
:class:`~dgm.flows.dequantization.LogitTransform`; then come ``scales`` levels of the multi-scale architecture
(Fig. 2b): each squeezes and applies ``steps`` steps of flow (Fig. 2a, Table 1)

    ActNorm → invertible 1x1 convolution (LU-decomposed with ``lu=True``) → affine coupling of half the channels,

and, at every level but the last, splits off half of the channels. The split's *learned prior* (§3.4, "split2d":
``z₂ ∼ N(μ(z₁), σ(z₁)²)``) is the affine coupling ``z₂ ↦ (z₂ − μ(z₁)) / σ(z₁)`` followed by the standard normal base,
so it is written as one more channel coupling before the split. The couplings' networks are
:func:`~dgm.nn.resnet.resnet` of ``channels`` channels with ``blocks`` residual blocks (Glow's own is ``blocks=0``:
3x3 conv, ReLU, zero-initialised 3x3 conv, here with no 1x1 in between), zero-initialised.

**No clamp that binds.** The couplings expand by at most ``e^max_log_scale`` but contract without bound
(:class:`~dgm.flows.transforms.OneSidedAffine`, of the family of Glow's ``scale = σ(r + 2)``), and the learned
prior's ``log σ`` is unbounded as in Glow (:class:`~dgm.flows.transforms.Affine` with ``max_log_scale=None``; the
width of the dequantization noise bounds it from below). With RealNVP's two-sided soft clamp ``|log scale| ≤ 2`` in
both places, ``glow-mnist`` drove both against their clamps: the factored-out half of 8-bit MNIST is mostly the noise
of background pixels, narrower than ``σ = e^−2``, and the last coupling of the first level wanted to contract further
than ``e^−2``. A clamp that binds has a vanishing gradient, so Adam drove the raw log-scales on (to 20–29 within five
epochs, the networks' weights growing by the same steps), and on some dequantization draws of test image 9127 the
last coupling passed the second level an input out of its range, which its couplings amplified step by step
(largest activation 26 → 279 → 838 → 1.9e3 → 7.1e3): ``−log p`` up to 1e8 nats (``docs/flows-images.md``).

**Expansion bounded as in Glow.** The default ``max_log_scale`` is Glow's own, ``log(1 + e^−2) ≈ 0.127``: with
``e^2`` a chain of first-level couplings could still amplify a rare dequantization draw (test image 7637: 11% of
1024 draws above twice the median, up to 5e4 nats, after the recipe's 10 epochs), with Glow's bound none does (the
same draws within 1.03 times their median), for 0.02 bits/dim more after 10 epochs (1.564 against 1.543).
"""
from __future__ import annotations

import math

from dgm.flows.actnorm import ActNorm
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.conv1x1 import InvertibleConv1x1, LUInvertibleConv1x1
from dgm.flows.dequantization import DequantizedFlow, LogitTransform, make_dequantizer
from dgm.flows.image_coupling import channel_mask, resnet_coupling
from dgm.flows.multiscale import MultiScale, check_scales
from dgm.flows.transforms import Affine, OneSidedAffine
from dgm.registry import register_model


GLOW_MAX_LOG_SCALE = math.log1p(math.exp(-2))  # ≈ 0.127: Glow's own scale σ(r + 2), divided by σ(2) to be 1 at r = 0


@register_model("glow", "Glow: ActNorm, invertible 1x1 convolutions, affine couplings, multi-scale; images, bound")
class Glow(DequantizedFlow):
    """See the module docstring; ``max_log_scale`` bounds each coupling's expansion
    (:class:`~dgm.flows.transforms.OneSidedAffine`), ``alpha`` is the logit transform's margin and ``dequantization``
    is ``"uniform"`` or ``"variational"`` (:mod:`dgm.flows.dequantization`)."""

    def __init__(self, shape: tuple[int, ...], levels: int, scales: int = 2, steps: int = 8, channels: int = 64,
                 blocks: int = 0, lu: bool = True, alpha: float = 0.05, max_log_scale: float = GLOW_MAX_LOG_SCALE,
                 dequantization: str = "uniform"):
        check_scales(shape, scales, scales, "glow")
        conv1x1 = LUInvertibleConv1x1 if lu else InvertibleConv1x1

        def coupling(shape: tuple[int, int, int], parity: int, transform: Affine) -> Bijection:
            return resnet_coupling(channel_mask(shape, parity), transform, channels, blocks)

        def step(shape: tuple[int, int, int], parity: int) -> Compose:
            transform = OneSidedAffine(max_log_scale)
            return Compose(ActNorm(shape[0]), conv1x1(shape[0]), coupling(shape, parity, transform))

        def level(shape: tuple[int, int, int], scales: int) -> MultiScale:
            c, h, w = shape
            squeezed_shape = (4 * c, h // 2, w // 2)
            flow = [step(squeezed_shape, k % 2) for k in range(steps)]
            if scales == 1:
                return MultiScale(Compose(*flow))
            learned_prior = coupling(squeezed_shape, 0, Affine(max_log_scale=None))
            return MultiScale(Compose(*flow, learned_prior), level((2 * c, h // 2, w // 2), scales - 1))

        super().__init__(Compose(LogitTransform(alpha), level(tuple(shape), scales)),
                         make_dequantizer(dequantization, shape))
