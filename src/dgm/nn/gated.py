"""The gated layer of Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, 2016b,
"Conditional Image Generation with PixelCNN Decoders", §2.1–2.3 and Figure 2).

Two stacks remove PixelCNN's blind spot:

- the **vertical stack** ``v`` sees every pixel of the rows above, through an unmasked ``(k//2 + 1) x k`` kernel
  over the rows ``i - k//2 … i`` of its input, whose first layer gets the image shifted down by one row;
- the **horizontal stack** ``h`` sees the pixels to the left in the current row, through a ``1 x (k//2 + 1)`` masked
  kernel (:class:`~dgm.nn.masked_conv.MaskedConv2d`, type A in the first layer, B after; the colour groups order
  the channels within the pixel), and receives the vertical stack's pre-activations by a 1x1 convolution.

Each stack applies the gated activation (eq. 2, with the conditioning term of eq. 4–5)

    y = tanh(W_f * x + V_f^T h) ⊙ σ(W_g * x + V_g^T h),

and the horizontal stack adds a residual connection, ``h_out = h_in + W_1x1 y`` (but the first layer, whose input
is the image). The first ``channels`` pre-activations are the ``f`` half and the next ``channels`` the ``g`` half;
with ``channels`` a multiple of the image's channels both halves of a colour group line up.

:meth:`GatedLayer.vertical_step` and :meth:`GatedLayer.horizontal_step` take inputs already padded or cut to the
kernels' reach, so that a whole image (:meth:`GatedLayer.forward`) and a cached sampler that evaluates one row of the
vertical stack or one pixel of the horizontal stack (Ramachandran et al., 2017) run the same code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.nn.conditioning import ConditionBias
from dgm.nn.masked_conv import MaskedConv2d


def gate(pre_activations: Tensor) -> Tensor:
    """``tanh(f) ⊙ σ(g)`` of the two halves ``(f, g)`` of the channels (eq. 2)."""
    f, g = pre_activations.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


def shift_down(x: Tensor) -> Tensor:
    """``x`` moved down one row (a zero row on top): row ``i`` of the result holds row ``i - 1`` of ``x``."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class GatedLayer(nn.Module):
    """One layer of both stacks, ``in_channels → channels``; ``first`` marks the layer that sees the image, ``last``
    the one whose vertical output no layer reads (it computes only what it sends to the horizontal stack, and has no
    vertical conditioning term: an unused parameter would also stop DDP)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, image_channels: int, first: bool,
                 last: bool = False, n_classes: int | None = None, condition_shape: tuple | None = None):
        super().__init__()
        self.reach = kernel_size // 2
        self.first = first
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.reach + 1, kernel_size))
        self.horizontal = MaskedConv2d(in_channels, 2 * channels, (1, self.reach + 1), "A" if first else "B",
                                       image_channels, centre=(0, self.reach))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.residual = MaskedConv2d(channels, channels, 1, "B", image_channels)
        self.vertical_condition = None if last else ConditionBias(2 * channels, n_classes, condition_shape)
        self.horizontal_condition = ConditionBias(2 * channels, n_classes, condition_shape)

    @property
    def vertical_padding(self) -> tuple[int, int, int, int]:
        """``F.pad`` sides that give the vertical kernel its reach: ``k//2`` columns each side, ``k//2`` rows above."""
        return (self.reach, self.reach, self.reach, 0)

    def biases(self, labels: Tensor | None, condition: Tensor | None) -> tuple[Tensor | float, Tensor | float]:
        """The conditioning terms ``V^T h`` of the vertical and the horizontal stack (``0`` where there is none)."""
        vertical = 0.0 if self.vertical_condition is None else self.vertical_condition(labels, condition)
        return vertical, self.horizontal_condition(labels, condition)

    def vertical_step(self, window: Tensor, vertical_bias: Tensor | float, horizontal_bias: Tensor | float
                      ) -> tuple[Tensor | None, Tensor]:
        """The gated vertical output (``None`` in the last layer) and the pre-activations it sends to the horizontal
        stack, from the padded vertical input ``window`` (all rows, or the ``k//2 + 1`` rows one output row needs)."""
        pre_activations = self.vertical(window)
        output = None if self.vertical_condition is None else gate(pre_activations + vertical_bias)
        return output, self.link(pre_activations) + horizontal_bias

    def horizontal_step(self, window: Tensor, h: Tensor, linked: Tensor) -> Tensor:
        """The horizontal output from its left-padded input ``window``, the unpadded input ``h`` at the output
        positions (for the residual) and the vertical stack's contribution ``linked``."""
        out = self.residual(gate(self.horizontal.window(window) + linked))
        return out if self.first else out + h

    def forward(self, v: Tensor, h: Tensor, labels: Tensor | None = None, condition: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        v_out, linked = self.vertical_step(F.pad(v, self.vertical_padding), *self.biases(labels, condition))
        return v_out, self.horizontal_step(F.pad(h, self.horizontal.padding_sides), h, linked)
