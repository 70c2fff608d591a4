"""Homework 1's tools for autoregressive image models: receptive-field maps and autocomplete pictures.

:func:`receptive_field` is the homework's ``plot_receptive_field`` without the plot: the gradient of one output
pixel's distribution parameters with respect to the network's input, at the input 0 (the middle of ``[-1, 1]``).
Its non-zero entries are the pixels the output can see: for PixelCNN a triangle with a **blind spot** above and to
the right of the pixel, for Gated PixelCNN every pixel of the rows above (within the layers' reach) and to the left.
:func:`dgm.plots.receptive_field` draws it weighted and binary.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dgm import plots
from dgm.models.autoregressive.base import MISSING, AutoregressiveImageModel


def receptive_field(model: AutoregressiveImageModel, pixel: tuple[int, int] | None = None,
                    labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
    """``|∂ Σ params(pixel) / ∂ x̃|`` summed over the input channels, shape ``(H, W)``; ``pixel`` is ``(row,
    column)``, the centre by default. ``labels`` / ``condition`` (one example) for conditional models."""
    _, height, width = model.shape
    row, column = (height // 2, width // 2) if pixel is None else pixel
    if not (0 <= row < height and 0 <= column < width):
        raise ValueError(f"pixel {pixel} lies outside the {height}x{width} image")
    labels, condition = model.check_condition(1, labels, condition)
    x = torch.zeros(1, *model.shape, device=model.device, dtype=model.dtype, requires_grad=True)
    model.network(x, labels, condition)[0, :, row, column].sum().backward()
    return x.grad[0].abs().sum(dim=0).detach()


def save_receptive_field(model: AutoregressiveImageModel, path: str | Path, pixel: tuple[int, int] | None = None,
                         title: str | None = None) -> Path:
    """The weighted and binary receptive-field maps of ``pixel`` (the centre by default) as a PNG."""
    _, height, width = model.shape
    pixel = (height // 2, width // 2) if pixel is None else pixel
    return plots.receptive_field(receptive_field(model, pixel), pixel, path, title=title or model.model_name)


def mask_lower_half(images: Tensor) -> Tensor:
    """``images`` with their lower half marked missing (``-1``), the homework's autocomplete input."""
    masked = images.clone()
    masked[:, :, images.shape[2] // 2:] = MISSING
    return masked


@torch.no_grad()
def save_autocomplete(model: AutoregressiveImageModel, images: Tensor, path: str | Path, completions: int = 4,
                      labels: Tensor | None = None) -> Path:
    """Homework 1's autocomplete picture: one column per image, with the original, the masked image (lower half
    missing, drawn as 0) and ``completions`` completions of it below."""
    masked = mask_lower_half(images.to(model.device, model.dtype))
    repeated = masked.repeat(completions, 1, 1, 1)
    completed = model.autocomplete(repeated, None if labels is None else labels.repeat(completions))
    rows = torch.cat([images.to(completed), masked.clamp(min=0), completed])
    return plots.save_image_grid(rows, model.levels, path, nrow=len(images),
                                 title=f"{model.model_name}: originals, lower halves masked, completions")
