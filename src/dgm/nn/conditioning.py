"""The conditioning term of conditional PixelCNNs (van den Oord et al., 2016b, eqs. 4–5).

A conditional layer adds ``V^T h`` to its pre-activations. :class:`ConditionBias` computes that term for

- a class label (eq. 4 with ``h`` one-hot): ``V^T h`` is a column of ``V``, a learned embedding of the class;
- a vector ``h`` (e.g. the latent code of a VAE whose decoder is a PixelCNN): a linear map, the same at every pixel;
- a feature map ``h`` of the image's height and width (eq. 5 with ``s = m(h)`` already computed by the caller, e.g.
  a VQ-VAE's upsampled code map): a 1x1 convolution, so each pixel gets its own term.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def region(bias: Tensor | float, rows: slice, columns: slice) -> Tensor | float:
    """The part of a conditioning term over ``rows`` and ``columns`` of the image: a cut of a feature map's term, the
    term itself where it is the same at every pixel (a class, a vector, or no condition)."""
    if isinstance(bias, Tensor) and bias.shape[-2:] != (1, 1):
        return bias[:, :, rows, columns]
    return bias


def condition_rows(condition: Tensor | None, rows: int) -> Tensor | None:
    """A feature-map condition ``(N, D, H, W)`` cut to its first ``rows`` rows, for a network run on the first rows
    of an image (row-prefix sampling); a vector or no condition as it is."""
    if condition is not None and condition.dim() == 4:
        return condition[:, :, :rows]
    return condition


def check_condition_shape(condition_shape: Sequence[int] | None, image_shape: tuple[int, ...]) -> tuple | None:
    """``condition_shape`` as a tuple if it is ``(D,)`` or ``(D, H, W)`` with the image's ``H, W``, else raise."""
    if condition_shape is None:
        return None
    shape = tuple(condition_shape)
    if not (len(shape) == 1 or len(shape) == 3 and shape[1:] == tuple(image_shape[1:])) or min(shape) < 1:
        raise ValueError(f"condition_shape must be (D,) for a vector or (D, {image_shape[1]}, {image_shape[2]}) for "
                         f"a feature map of the image's size, got {shape}")
    return shape


class ConditionBias(nn.Module):
    """``V^T h`` for ``channels`` pre-activations, from class ``labels`` and/or a ``condition`` vector or map;
    ``0`` for an unconditional layer. The result broadcasts against ``(N, channels, H, W)``."""

    def __init__(self, channels: int, n_classes: int | None = None, condition_shape: tuple | None = None):
        super().__init__()
        self.classes = None if n_classes is None else nn.Embedding(n_classes, channels)
        if condition_shape is None:
            self.project = None
        elif len(condition_shape) == 1:
            self.project = nn.Linear(condition_shape[0], channels, bias=False)
        else:
            self.project = nn.Conv2d(condition_shape[0], channels, 1, bias=False)

    def forward(self, labels: Tensor | None, condition: Tensor | None) -> Tensor | float:
        bias = 0.0
        if self.classes is not None:
            bias = bias + self.classes(labels)[:, :, None, None]
        if isinstance(self.project, nn.Linear):
            bias = bias + self.project(condition)[:, :, None, None]
        elif self.project is not None:
            bias = bias + self.project(condition)
        return bias
