"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma, 2017).

The modifications of PixelCNN that the paper lists, in this implementation:

1. **Discretized logistic mixture likelihood** (§2.1, eqs. 2–3),
   :class:`dgm.distributions.DiscretizedLogisticMixture`, with the edge bins reaching to ±∞.
2. **Conditioning on whole pixels** (§2.2): the network gives one set of parameters per pixel; the colour channels
   are coupled inside the mixture by a linear dependence of each channel's mean on the channels before it, so the
   network needs no channel masks.
3. **Downsampling** (§2.3) by strided shifted convolutions between ``resolutions`` levels of resolution, upsampling
   by transposed ones.
4. **Shortcut connections** (§2.4): the upsampling pass receives every output of the downsampling pass at the same
   resolution as the auxiliary input of its gated residual blocks (a U-net of causal streams).
5. **Dropout** (§2.6) inside every gated residual block.

Two causal streams replace masked convolutions (:mod:`dgm.nn.streams`): a *down* stream that sees every row above
the current pixel and a *down-right* stream that sees the pixels to its left as well (and the down stream), which
together cover all of ``x_<i`` without a blind spot. The first layer shifts its output one row down (and one column
right), so no parameter of pixel ``i`` depends on pixel ``i`` itself. As in the paper's code, a channel of ones is
appended to the input so that the zero padding is distinguishable from the image.

**Output.** Binary grey images (``levels=2``, one channel) use the categorical output (two logits per pixel,
:class:`~dgm.distributions.CategoricalPixels`): a mixture of logistics over two values is a Bernoulli
whose probability is a mixture of sigmoids, the same family as two logits in ``3K`` parameters and harder to fit;
every other image uses the logistic mixture. ``output="categorical"`` or ``"logistic"`` overrides the choice (the
categorical output needs a single channel: its channel-by-channel sampling is not what this network conditions on).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.distributions import PixelHead, pixel_head
from dgm.models.autoregressive.base import AutoregressiveImageModel, RowPrefixCache
from dgm.nn.conditioning import condition_rows
from dgm.nn.streams import FirstLayer, StreamBlock, StreamResample
from dgm.registry import register_model

@register_model("pixelcnn++", "PixelCNN++: logistic mixture, down/down-right streams, downsampling, shortcuts")
class PixelCNNPlusPlus(AutoregressiveImageModel):
    """``resolutions`` levels (each halving the previous) of ``blocks`` gated residual blocks per stream, with
    ``filters`` channels; ``components`` logistics in the mixture; ``dropout`` in every block. The defaults train
    on a laptop's CPU (the paper: 160 filters, 5 blocks, 3 resolutions, 10 components, dropout 0.5 for CIFAR-10).
    ``n_classes`` and ``condition_shape`` (``[D]`` for a vector such as a VAE's latent code, ``[D, H, W]`` for a
    feature map such as a VQ-VAE's code map) make it conditional: every gated block adds a learned term of it to its
    pre-activations (see the base); a feature map reaches each coarser level averaged over 2x2 cells, level by
    level (:meth:`conditions_per_level`)."""

    def __init__(self, shape: Sequence[int], levels: int = 256, filters: int = 32, blocks: int = 1,
                 resolutions: int = 3, components: int = 5, dropout: float = 0.0, output: PixelHead | None = None,
                 n_classes: int | None = None, condition_shape: Sequence[int] | None = None):
        super().__init__(shape, levels, n_classes, condition_shape,
                         output=pixel_head(shape[0], levels, output, components))
        check_integer(filters, "filters", 1)
        check_integer(blocks, "blocks", 1)
        self.resolutions = check_integer(resolutions, "resolutions", 1)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.first = FirstLayer(self.channels + 1, filters)
        conditioning = (self.n_classes, self.condition_shape)
        self.down_pass = nn.ModuleList(nn.ModuleList(StreamBlock(filters, dropout, False, *conditioning)
                                                     for _ in range(blocks)) for _ in range(resolutions))
        self.downsample = nn.ModuleList(StreamResample(filters, up=False) for _ in range(resolutions - 1))
        # each level of the upsampling pass reads, newest first, what its level stored: its blocks' outputs and the
        # tensor that entered it (from the downsampling or, at the finest level, the first layer); the coarsest
        # level's last output starts the pass, so that level has `blocks` blocks and the others `blocks + 1`
        self.up_pass = nn.ModuleList(nn.ModuleList(StreamBlock(filters, dropout, True, *conditioning)
                                                   for _ in range(blocks + (level < resolutions - 1)))
                                     for level in range(resolutions))
        self.upsample = nn.ModuleList(StreamResample(filters, up=True) for _ in range(resolutions - 1))
        self.head = nn.Conv2d(filters, self.output.param_channels, 1)

    def conditions_per_level(self, condition: Tensor | None) -> list[Tensor | None]:
        """The condition of each level of resolution: a feature map averaged over 2x2 cells once per level (always
        from the whole map, so that a network run on the first rows of an image gets the rows of the whole
        image's terms), a vector or ``None`` as it is."""
        if condition is None or condition.dim() == 2:
            return [condition] * self.resolutions
        maps = [condition]
        for _ in range(self.resolutions - 1):
            maps.append(F.avg_pool2d(maps[-1], 2, ceil_mode=True))
        return maps

    def network(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> Tensor:
        conditions = self.conditions_per_level(condition)
        u, ul = self.first(torch.cat([x, torch.ones_like(x[:, :1])], dim=1))
        shortcuts, sizes = [(u, ul)], []
        for level, blocks in enumerate(self.down_pass):
            if level > 0:
                sizes.append(u.shape[-2:])
                u, ul = self.downsample[level - 1](u, ul)
                shortcuts.append((u, ul))
            for block in blocks:
                u, ul = block(u, ul, labels=labels, condition=condition_rows(conditions[level], u.shape[2]))
                shortcuts.append((u, ul))
        u, ul = shortcuts.pop()
        for level in reversed(range(self.resolutions)):
            for block in self.up_pass[level]:
                u, ul = block(u, ul, shortcuts.pop(), labels, condition_rows(conditions[level], u.shape[2]))
            if level > 0:
                u, ul = self.upsample[level - 1](u, ul, sizes.pop())
        return self.head(F.elu(ul))

    def new_cache(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> RowPrefixCache:
        return RowPrefixCache(self, labels, condition)
