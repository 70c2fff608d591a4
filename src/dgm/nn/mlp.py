"""The plain multilayer perceptron used as a building block across families."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


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
