"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, 2016a, §3.4), as homework 1 specifies it.

A stack of masked convolutions (:mod:`dgm.nn.masked_conv`): the first of type A, the others of type B, each followed
by an optional layer norm (per colour group) and a ReLU, then a 1x1 type-B convolution to the parameters of every
pixel's categorical over ``levels`` values, channel by channel (R, G, B). The likelihood is exact
(:mod:`dgm.models.autoregressive.base`). Stacked masked convolutions leave a **blind spot**: pixels above and to the
right of the current one that no layer reaches (:func:`dgm.models.autoregressive.tools.receptive_field`); Gated
PixelCNN (:mod:`dgm.models.autoregressive.gated_pixelcnn`) removes it.

Cached sampling (:class:`PixelCNNCache`, in the manner of Ramachandran et al., 2017): output ``(i, j)`` of a masked
layer needs its input only at positions before ``(i, j)`` in raster order, which were generated already; keeping
each layer's input, a position costs one small convolution per layer instead of a pass over the whole image, and the
draws are those of the naive sampler.

Conditioning (homework 4's ``conditional_size``): each layer adds a learned function of the class label, vector or
feature map to its pre-activations (:class:`dgm.nn.conditioning.ConditionBias`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.models.autoregressive.base import AutoregressiveImageModel, LayerCache
from dgm.nn.conditioning import ConditionBias, region
from dgm.nn.masked_conv import CausalLayerNorm, MaskedConv2d
from dgm.registry import register_model


@register_model("pixelcnn", "PixelCNN: masked convolutions (types A, B), exact likelihood, binary/grey/colour images")
class PixelCNN(AutoregressiveImageModel):
    """``layers`` masked ``kernel_size`` convolutions of ``filters`` channels (homework 1: 64 filters, 5 layers,
    kernel 5, layer norm); ``filters`` must be a multiple of the image's channels."""

    def __init__(self, shape: Sequence[int], levels: int = 2, filters: int = 64, layers: int = 5,
                 kernel_size: int = 5, layer_norm: bool = True, n_classes: int | None = None,
                 condition_shape: Sequence[int] | None = None):
        super().__init__(shape, levels, n_classes, condition_shape)
        check_integer(layers, "layers", 1)
        check_integer(kernel_size, "kernel_size", 1)
        if check_integer(filters, "filters", 1) % self.channels:
            raise ValueError(f"filters must be a multiple of the image's {self.channels} channels, got {filters}")
        widths = [self.channels] + [filters] * layers
        self.convs = nn.ModuleList(
            MaskedConv2d(widths[k], filters, kernel_size, "A" if k == 0 else "B", self.channels)
            for k in range(layers))
        self.norms = nn.ModuleList(CausalLayerNorm(filters, self.channels) if layer_norm else nn.Identity()
                                   for _ in range(layers))
        self.conditions = nn.ModuleList(ConditionBias(filters, self.n_classes, self.condition_shape)
                                        for _ in range(layers))
        self.head = MaskedConv2d(filters, self.output.param_channels, 1, "B", self.channels)

    def network(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> Tensor:
        h = x
        for conv, norm, conditioning in zip(self.convs, self.norms, self.conditions):
            h = F.relu(norm(conv(h) + conditioning(labels, condition)))
        return self.head(h)

    def new_cache(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> "PixelCNNCache":
        return PixelCNNCache(self, x, labels, condition)


class PixelCNNCache(LayerCache):
    """The (padded) input of every masked layer, filled one pixel at a time in raster order."""

    def __init__(self, model: PixelCNN, x: Tensor, labels: Tensor | None, condition: Tensor | None):
        n, (_, height, width) = len(x), model.shape
        self.model = model
        self.kernel = model.convs[0].kernel_size
        left, right, top, _ = model.convs[0].padding_sides
        self.top, self.left = top, left
        self.inputs = [x.new_zeros(n, conv.in_channels, height + top, width + left + right) for conv in model.convs]
        self.biases = [conditioning(labels, condition) for conditioning in model.conditions]

    def pixel(self, i: int, j: int, x: Tensor) -> Tensor:
        self.store(i, j, x)
        rows, columns = slice(i, i + self.kernel[0]), slice(j, j + self.kernel[1])
        model = self.model
        for k, (conv, norm, bias) in enumerate(zip(model.convs, model.norms, self.biases)):
            h = F.relu(norm(conv.window(self.inputs[k][:, :, rows, columns])
                            + region(bias, slice(i, i + 1), slice(j, j + 1))))
            if k + 1 < len(model.convs):
                self.inputs[k + 1][:, :, self.top + i, self.left + j] = h[:, :, 0, 0]
        return model.head.window(h)[:, :, 0, 0]

    def store(self, i: int, j: int, x: Tensor) -> None:
        self.inputs[0][:, :, self.top + i, self.left + j] = self.model.scaled(x[:, :, i, j])
