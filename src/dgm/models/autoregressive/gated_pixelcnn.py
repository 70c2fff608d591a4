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

**Cached sampling.** The naive sampler runs the whole network on the whole image for every position. Here every
layer keeps its inputs: the vertical stack's output rows, computed once per image row (row ``i`` of the vertical
stack needs only rows ``< i`` of the image), and the horizontal stack's inputs of the current row. Generating one
position then costs one ``1 x (k//2 + 1)`` convolution per layer on the cached row. The draws are the naive
sampler's, made in the same order with the same calls to the random generator, so with the same seed both give the
same images (tested; ``benchmarks/ar_sampling.py`` measures the speed-up).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dgm.core import check_integer
from dgm.models.autoregressive.base import AutoregressiveImageModel
from dgm.nn.gated import GatedLayer, shift_down
from dgm.nn.masked_conv import MaskedConv2d
from dgm.registry import register_model


def _row(bias: Tensor | float, i: int) -> Tensor | float:
    """Row ``i`` of a conditioning term that varies over the image (a feature map), else the term itself."""
    return bias[:, :, i:i + 1] if isinstance(bias, Tensor) and bias.shape[-2] > 1 else bias


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
                       n_classes=self.n_classes, condition_shape=self.condition_shape) for k in range(layers))
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(filters, filters, 1, "B", self.channels), nn.ReLU(),
                                  MaskedConv2d(filters, self.output.param_channels, 1, "B", self.channels))

    def network(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> Tensor:
        v, h = shift_down(x), x
        for layer in self.layers:
            v, h = layer(v, h, labels, condition)
        return self.head(h)

    def generate(self, x: Tensor, missing: Tensor, labels: Tensor | None, condition: Tensor | None,
                 progress: bool) -> Tensor:
        """Cached sampling (see the module docstring): the same draws as :meth:`generate_naive`."""
        n, (_, height, width) = len(x), self.shape
        reach = self.layers[0].reach
        biases = [(layer.vertical_condition(labels, condition), layer.horizontal_condition(labels, condition))
                  for layer in self.layers]
        # padded inputs of each layer: the vertical stack's whole image, the horizontal stack's current row
        vertical = [x.new_zeros(n, layer.vertical.in_channels, height + reach, width + 2 * reach)
                    for layer in self.layers]
        horizontal = [x.new_zeros(n, layer.horizontal.in_channels, 1, width + reach) for layer in self.layers]
        pixels = self.generation_order(missing)
        last_row = pixels[-1][0] if pixels else -1
        for i in tqdm(range(last_row + 1), desc=f"{self.model_name} sampling", disable=not progress):
            if i > 0:  # the first layer's vertical input is the image shifted down one row
                vertical[0][:, :, i + reach, reach:reach + width] = self.scaled(x[:, :, i - 1])
            linked = []
            for k, (layer, (vertical_bias, horizontal_bias)) in enumerate(zip(self.layers, biases)):
                v_out, row_link = layer.vertical_step(vertical[k][:, :, i:i + reach + 1], _row(vertical_bias, i),
                                                      _row(horizontal_bias, i))
                if k + 1 < len(self.layers):
                    vertical[k + 1][:, :, i + reach, reach:reach + width] = v_out[:, :, 0]
                linked.append(row_link)
            steps = {j: pixel_steps for row, j, pixel_steps in pixels if row == i}
            for j in range(max(steps, default=-1) + 1):
                if j not in steps:  # a known pixel: the pixels after it need its features
                    self._column(horizontal, linked, x, i, j)
                for channels in steps.get(j, []):
                    params = self.head(self._column(horizontal, linked, x, i, j))[:, :, 0, 0]
                    self.fill(x, missing, i, j, channels, self.output.sample(params))
                # the features at (i, j) never see the pixel's last channel: only the image row needs updating
                horizontal[0][:, :, 0, reach + j] = self.scaled(x[:, :, i, j])
        return x

    def _column(self, horizontal: list[Tensor], linked: list[Tensor], x: Tensor, i: int, j: int) -> Tensor:
        """Run the horizontal stack at pixel ``(i, j)`` on the cached rows, storing each layer's output as the next
        layer's input; returns the last layer's output ``(N, filters, 1, 1)``."""
        reach = self.layers[0].reach
        horizontal[0][:, :, 0, reach + j] = self.scaled(x[:, :, i, j])
        for k, layer in enumerate(self.layers):
            h = layer.horizontal_step(horizontal[k][:, :, :, j:j + reach + 1],
                                      horizontal[k][:, :, :, reach + j:reach + j + 1], linked[k][:, :, :, j:j + 1])
            if k + 1 < len(self.layers):
                horizontal[k + 1][:, :, :, reach + j] = h[:, :, :, 0]
        return h
