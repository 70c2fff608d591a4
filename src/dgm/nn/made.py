"""Masked autoencoder for distribution estimation: the autoregressive network of Germain et al. (2015), "MADE".

Every input dimension ``i`` gets a degree ``m_0(i)`` = its rank in the chosen ordering (0-based here: the first
dimension generated has degree 0). Every hidden unit ``k`` of layer ``l`` gets a degree ``m_l(k)`` in
``[min m_{l-1}, D-2]`` (the paper's ``[min m_{l-1}, D-1]`` with 1-based degrees). The connectivity masks are (paper,
eqs. 12-13, and the output mask of eq. 14)

    hidden layer l:  M_l[k, k'] = 1  if  m_l(k) >= m_{l-1}(k')
    output layer:    M_out[i, k] = 1  if  m_0(i) > m_L(k)

so a path from input ``j`` to output ``i`` exists only if ``m_0(j) <= m_1 <= ... <= m_L < m_0(i)``: output ``i``
depends only on the inputs that come before it in the ordering. The product of the masks counts those paths
(course HW1, theory task 1), and is therefore zero on and above the diagonal of the ordering.

**Context.** A conditional MADE also takes a context vector ``c`` (conditional MAF, Papamakarios, Pavlakou &
Murray, 2017, §3.4; the ``h`` of IAF, Kingma et al., 2016, Algorithm 1). Its features enter beside the inputs with
degree ``−1``, as if ``c`` came before every dimension in the ordering, and the rules above do the rest: the hidden
degrees range over ``[−1, D−2]``, every unit of the first layer sees ``c``, units of degree ``−1`` see ``c`` alone and
carry it to the first output of the ordering, so every output may depend on ``c``, while a path from input ``j`` to
output ``i`` still needs ``m_0(j) < m_0(i)``: the autoregressive property holds whatever ``c``.

The network is used as a density model on its own (:mod:`dgm.models.autoregressive.made`) and as the conditioner of
autoregressive flows and priors: it maps ``(B, D * in_per_dim)`` inputs (and ``(B, context_dim)`` contexts) to
``(B, D, out_per_dim)`` outputs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Ordering = Literal["natural", "random"]


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied elementwise by a fixed 0/1 mask (a buffer, saved with the model)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: Tensor) -> None:
        """Replace the mask; ``mask`` has the weight's shape ``(out_features, in_features)``."""
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask must have shape {tuple(self.weight.shape)} (out_features, in_features), "
                             f"got {tuple(mask.shape)}")
        self.mask.copy_(mask.to(self.mask.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _input_degrees(dim: int, order: Ordering, generator: torch.Generator) -> Tensor:
    """``m_0``: the rank of each dimension, the identity for ``"natural"``, a seeded permutation for ``"random"``."""
    if order == "natural":
        return torch.arange(dim)
    return torch.randperm(dim, generator=generator)


def _hidden_degrees(dim: int, previous: Tensor, width: int, order: Ordering, generator: torch.Generator) -> Tensor:
    """``m_l`` for a hidden layer of ``width`` units, in ``[min m_{l-1}, D-2]``.

    ``"natural"`` cycles through the range, so that with ``width`` at least its size (``D-1``, or ``D`` with a context
    of degree ``-1``) every degree is present and every allowed connection exists; ``"random"`` samples uniformly as
    in the paper.
    """
    low = int(previous.min())
    high = max(dim - 2, low)
    if order == "natural":
        return low + torch.arange(width) % (high - low + 1)
    return torch.randint(low, high + 1, (width,), generator=generator)


class MADENetwork(nn.Module):
    """Masked MLP whose output ``[:, i, :]`` depends only on inputs of dimensions ranked before ``i``.

    ``dim`` dimensions enter as ``in_per_dim`` features each (e.g. a one-hot code), laid out dimension-major: feature
    ``i * in_per_dim + k`` belongs to dimension ``i`` and shares its degree; likewise each dimension gets
    ``out_per_dim`` outputs (e.g. categorical logits or a mean and log-scale). ``order="natural"`` generates the
    dimensions in index order with deterministic hidden degrees; ``order="random"`` draws the ordering and the hidden
    degrees from a private generator seeded by ``seed`` (used for building the masks only). The buffer ``order``
    holds the rank of each dimension (``order[i]`` = position of dimension ``i`` in the ordering); it and the masks
    are buffers, so a reloaded network has identical masks. ``context_dim > 0`` makes the network conditional on
    contexts ``(B, context_dim)`` seen by every unit of the first layer (module docstring); with ``context_dim = 0``
    the network is unconditional and ignores any context.
    """

    def __init__(self, dim: int, hidden: Sequence[int], out_per_dim: int, in_per_dim: int = 1,
                 order: Ordering = "natural", seed: int = 0, activation: type[nn.Module] = nn.ReLU,
                 context_dim: int = 0):
        super().__init__()
        if dim < 1 or out_per_dim < 1 or in_per_dim < 1 or context_dim < 0:
            raise ValueError(f"dim, out_per_dim and in_per_dim must be positive integers and context_dim a "
                             f"non-negative one, got {dim}, {out_per_dim}, {in_per_dim}, {context_dim}")
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden widths must be positive integers, got {list(hidden)}")
        if order not in ("natural", "random"):
            raise ValueError(f"order must be 'natural' or 'random', got {order!r}")
        self.dim, self.in_per_dim, self.out_per_dim, self.context_dim = dim, in_per_dim, out_per_dim, context_dim

        generator = torch.Generator().manual_seed(seed)
        ranks = _input_degrees(dim, order, generator)
        self.register_buffer("order", ranks)
        degrees = [torch.cat([ranks.repeat_interleave(in_per_dim), torch.full((context_dim,), -1)])]
        for width in hidden:
            degrees.append(_hidden_degrees(dim, degrees[-1], width, order, generator))

        layers: list[nn.Module] = []
        for degrees_in, degrees_out in zip(degrees[:-1], degrees[1:]):
            layer = MaskedLinear(len(degrees_in), len(degrees_out))
            layer.set_mask(degrees_out[:, None] >= degrees_in[None, :])
            layers += [layer, activation()]
        self.hidden = nn.Sequential(*layers)
        output_degrees = ranks.repeat_interleave(out_per_dim)
        self.output = MaskedLinear(len(degrees[-1]), len(output_degrees))
        self.output.set_mask(output_degrees[:, None] > degrees[-1][None, :])

    @property
    def sampling_order(self) -> Tensor:
        """The dimensions in the order they are generated: ``sampling_order[t]`` is the dimension of rank ``t``."""
        return torch.argsort(self.order)

    @property
    def masks(self) -> list[Tensor]:
        """The masks from input to output, each ``(out_features, in_features)``."""
        return [module.mask for module in self.modules() if isinstance(module, MaskedLinear)]

    def _with_context(self, inputs: Tensor, context: Tensor | None) -> Tensor:
        """The flat inputs, followed by the context if the network is conditional."""
        if not self.context_dim:
            return inputs
        if context is None or tuple(context.shape) != (len(inputs), self.context_dim):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"this MADENetwork is conditional: it needs a context of shape "
                             f"({len(inputs)}, {self.context_dim}) (B, context_dim), got {got}")
        return torch.cat([inputs, context], dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Inputs ``(B, dim * in_per_dim)`` or ``(B, dim, in_per_dim)`` and, if conditional, a context
        ``(B, context_dim)`` → outputs ``(B, dim, out_per_dim)``."""
        features = self.dim * self.in_per_dim
        if x.dim() < 2 or x.shape[1:].numel() != features:
            raise ValueError(f"MADENetwork expects inputs of shape (B, {self.dim} * {self.in_per_dim}) or "
                             f"(B, {self.dim}, {self.in_per_dim}), got {tuple(x.shape)}")
        inputs = self._with_context(x.reshape(len(x), features), context)
        return self.output(self.hidden(inputs)).view(len(x), self.dim, self.out_per_dim)
