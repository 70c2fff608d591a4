"""Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, 2016b, "Conditional Image
Generation with PixelCNN Decoders"), with cached sampling (Ramachandran et al., 2017, "Fast Generation for
Convolutional Autoregressive Models").

``layers`` gated layers (:class:`dgm.nn.gated.GatedLayer`, eqs. 2–3: a vertical and a horizontal stack, gated
activations, a residual connection in the horizontal stack) and then two 1x1 masked convolutions with ReLUs give
each pixel's categorical over ``levels`` values, channel by channel (R, G, B). The vertical stack sees every pixel
of the rows above and the horizontal stack the pixels to the left: the receptive field has no blind spot.

Conditioning (eqs. 4–5): ``n_classes`` adds a learned class embedding to the pre-activations of both stacks in
every layer; ``condition_shape`` ``(D,)`` or ``(D, H, W)`` a linear map of a vector or a 1x1 convolution of a
feature map (:class:`dgm.nn.conditioning.ConditionBias`).

**Cached sampling** (:class:`GatedCache`). The naive sampler runs the whole network on the whole image for every
position. Here every layer keeps its inputs: the vertical stack's output rows, computed once per image row (row
``i`` of the vertical stack needs only rows ``< i`` of the image), and the horizontal stack's inputs of the current
row. Generating one position then costs one ``1 x (k//2 + 1)`` convolution per layer on the cached row. The draws
are the naive sampler's (:mod:`dgm.models.autoregressive.base`), so with the same seed both give the same images
(tested; ``benchmarks/ar_sampling.py`` measures the speed-up).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dgm.core import check_integer
from dgm.models.autoregressive.base import AutoregressiveImageModel, LayerCache
from dgm.nn.conditioning import region
from dgm.nn.gated import GatedLayer, shift_down
from dgm.nn.masked_conv import MaskedConv2d
from dgm.registry import register_model


@register_model("gated-pixelcnn",
                "Gated PixelCNN: vertical + horizontal stacks, no blind spot, class/vector/map conditioning, "
                "cached sampling")
class GatedPixelCNN(AutoregressiveImageModel):
    """``layers`` gated layers of ``filters`` channels with ``kernel_size`` (odd, at least 3) kernels; ``filters``
    must be a multiple of the image's channels."""

    def __init__(self, shape: Sequence[int], levels: int = 2, filters: int = 64, layers: int = 5,
                 kernel_size: int = 5, n_classes: int | None = None, condition_shape: Sequence[int] | None = None):
        super().__init__(shape, levels, n_classes, condition_shape)
        check_integer(layers, "layers", 1)
        if check_integer(kernel_size, "kernel_size", 3) % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if check_integer(filters, "filters", 1) % self.channels:
            raise ValueError(f"filters must be a multiple of the image's {self.channels} channels, got {filters}")
        self.layers = nn.ModuleList(
            GatedLayer(self.channels if k == 0 else filters, filters, kernel_size, self.channels, first=k == 0,
                       last=k == layers - 1, n_classes=self.n_classes, condition_shape=self.condition_shape)
            for k in range(layers))
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(filters, filters, 1, "B", self.channels), nn.ReLU(),
                                  MaskedConv2d(filters, self.output.param_channels, 1, "B", self.channels))

    def network(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> Tensor:
        v, h = shift_down(x), x
        for layer in self.layers:
            v, h = layer(v, h, labels, condition)
        return self.head(h)

    def new_cache(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> "GatedCache":
        return GatedCache(self, x, labels, condition)


class GatedCache(LayerCache):
    """Cached inputs of every gated layer: the vertical stack's whole (padded) image, filled one row at a time, and
    the horizontal stack's current (left-padded) row, filled one pixel at a time."""

    full_rows = False  # the vertical stack of the next row is computed from the image row, whole

    def __init__(self, model: GatedPixelCNN, x: Tensor, labels: Tensor | None, condition: Tensor | None):
        n, (_, height, width) = len(x), model.shape
        self.model, self.layers, self.reach, self.width = model, model.layers, model.layers[0].reach, width
        self.biases = [layer.biases(labels, condition) for layer in self.layers]
        self.vertical = [x.new_zeros(n, layer.vertical.in_channels, height + self.reach, width + 2 * self.reach)
                         for layer in self.layers]
        self.horizontal = [x.new_zeros(n, layer.horizontal.in_channels, 1, width + self.reach)
                           for layer in self.layers]
        self.linked: list[Tensor] = []

    def start_row(self, i: int, x: Tensor) -> None:
        """Row ``i`` of every vertical layer (it sees rows ``< i`` of the image only) and what it sends to the
        horizontal stack."""
        reach, width, row = self.reach, self.width, slice(i, i + 1)
        if i > 0:  # the first layer's vertical input is the image shifted down one row
            self.vertical[0][:, :, i + reach, reach:reach + width] = self.model.scaled(x[:, :, i - 1])
        self.linked = []
        for k, (layer, (vertical_bias, horizontal_bias)) in enumerate(zip(self.layers, self.biases)):
            v_out, linked = layer.vertical_step(self.vertical[k][:, :, i:i + reach + 1],
                                                region(vertical_bias, row, slice(None)),
                                                region(horizontal_bias, row, slice(None)))
            if k + 1 < len(self.layers):
                self.vertical[k + 1][:, :, i + reach, reach:reach + width] = v_out[:, :, 0]
            self.linked.append(linked)

    def pixel(self, i: int, j: int, x: Tensor) -> Tensor:
        self.store(i, j, x)
        reach = self.reach
        for k, layer in enumerate(self.layers):
            h = layer.horizontal_step(self.horizontal[k][:, :, :, j:j + reach + 1],
                                      self.horizontal[k][:, :, :, reach + j:reach + j + 1],
                                      self.linked[k][:, :, :, j:j + 1])
            if k + 1 < len(self.layers):
                self.horizontal[k + 1][:, :, :, reach + j] = h[:, :, :, 0]
        return self.model.head(h)[:, :, 0, 0]

    def store(self, i: int, j: int, x: Tensor) -> None:
        self.horizontal[0][:, :, 0, self.reach + j] = self.model.scaled(x[:, :, i, j])
