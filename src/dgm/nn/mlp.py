"""The plain multilayer perceptron used as a building block across families, and the MaxMin activation."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class MaxMin(nn.Module):
    """GroupSort with groups of two (Anil, Lucas & Grosse, 2019, "Sorting out Lipschitz function approximation",
    §4): the features in pairs ``(a, b)`` → ``(max(a, b), min(a, b))``. It permutes its inputs, so its Jacobian is
    a permutation matrix: it preserves gradient norms, where a ReLU or leaky ReLU shrinks them. Between layers of
    spectral norm 1 it keeps a critic 1-Lipschitz without losing the slope a Wasserstein critic needs (a
    spectrally normalised leaky-ReLU MLP has gradient norm 0.2–0.4). Needs an even number of features."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2:
            raise ValueError(f"MaxMin pairs the features: it needs an even number, got {x.shape[-1]}")
        a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=-1)


def mlp(in_features: int, hidden: Sequence[int], out_features: int, activation: type[nn.Module] = nn.ReLU,
        zero_last: bool = False) -> nn.Sequential:
    """``Linear → activation`` for each hidden width, then a final ``Linear`` without activation.

    ``zero_last`` initialises the last layer to zero, so that a coupling or autoregressive transform starts as the
    identity (a common stabiliser of flow training).
    """
    widths = [in_features, *hidden]
    if not all(isinstance(width, int) and width > 0 for width in [*widths, out_features]):
        raise ValueError(f"layer widths must be positive integers, got {in_features} -> {list(hidden)} -> "
                         f"{out_features}; hidden is a list of widths such as [64, 64]")
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out), activation()]
    last = nn.Linear(widths[-1], out_features)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)
