"""Autoregressive flows with MADE conditioners: MAF (Papamakarios, Pavlakou & Murray, 2017) and IAF (Kingma et al.,
2016), with any elementwise transform (affine, or a rational-quadratic spline for the autoregressive neural spline
flow of Durkan et al., 2019).

One autoregressive layer maps ``u → v`` by ``v_i = τ(u_i; θ_i(u_{<i}))``, where ``<i`` means "earlier in the MADE
ordering" and ``θ = MADE(u)`` (Germain et al., 2015) is computed for all ``i`` in one network pass. The Jacobian
``∂v/∂u`` is triangular in the ordering, so ``log|det| = Σ_i log τ'(u_i; θ_i)``. Given ``v`` the inverse needs
``u_{<i}`` before it can compute ``θ_i``: the iteration ``u ← τ⁻¹(v; θ(u))`` started anywhere is exact on the first
``t`` coordinates of the ordering after ``t`` passes, so ``D`` passes recover ``u``.

* MAF (eq. 3-4 of Papamakarios et al.) takes ``u = x`` (data) and ``v = z`` (noise): the density is one pass and
  sampling ``D`` passes. It is :class:`MaskedAutoregressive`.
* IAF (eq. 10-11 of Kingma et al.) is the same layer with the directions swapped, ``u = z`` and ``v = x``: sampling is
  one pass and the density ``D`` passes. It is :class:`InverseAutoregressive`.

Built with ``context_dim > 0`` either layer is conditional: ``θ = MADE(u, c)`` with the context ``c`` fed to every
unit of MADE's first layer (:mod:`dgm.nn.made`), as in conditional MAF (Papamakarios et al., §3.4) and IAF's
posterior conditioned on the encoder's ``h`` (Kingma et al., Algorithm 1). The Jacobian in ``u`` stays triangular for
each fixed ``c``, and the ``D`` passes of the inverse use the same ``c``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.model import FlowModel
from dgm.flows.permutation import Permutation
from dgm.flows.transforms import ElementwiseTransform, elementwise_transform
from dgm.nn.made import MADENetwork, Ordering


class MaskedAutoregressive(Bijection):
    """MAF layer on vectors ``(N, D)``: ``forward`` (data → noise) in one MADE pass, ``inverse`` in ``D`` passes.

    The MADE network has hidden widths ``hidden`` and outputs the ``k = transform.params_per_element`` parameters
    of each dimension; its output layer starts at zero, so the layer starts as the identity. ``order`` and ``seed``
    choose the MADE ordering (see :class:`~dgm.nn.made.MADENetwork`). ``context_dim > 0`` makes the layer
    conditional on contexts ``(N, context_dim)``; with ``context_dim = 0`` it ignores any context.
    """

    def __init__(self, dim: int, hidden: Sequence[int], transform: ElementwiseTransform,
                 order: Ordering = "natural", seed: int = 0, activation: type[nn.Module] = nn.ReLU,
                 context_dim: int = 0):
        super().__init__()
        self.dim = check_integer(dim, "dim", 1)
        self.made = MADENetwork(dim, hidden, transform.params_per_element, order=order, seed=seed,
                                activation=activation, context_dim=context_dim)
        nn.init.zeros_(self.made.output.weight)
        nn.init.zeros_(self.made.output.bias)
        self.transform = transform

    def _check(self, u: Tensor) -> Tensor:
        if u.dim() != 2 or u.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects vectors of shape (N, {self.dim}), got {tuple(u.shape)}")
        return u

    def _params(self, u: Tensor, context: Tensor | None) -> Tensor:
        """``θ(u, c)`` laid out as the transforms expect, ``(N, k, D)``."""
        return self.made(u, context).transpose(1, 2)

    def _one_pass(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """``v = τ(u; θ(u, c))`` and ``log|det ∂v/∂u|``."""
        v, log_derivative = self.transform(u, self._params(self._check(u), context))
        return v, log_derivative.sum(dim=1)

    def _sequential(self, v: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """``u`` with ``τ(u; θ(u, c)) = v`` by ``D`` passes of ``u ← τ⁻¹(v; θ(u, c))``, and ``log|det ∂u/∂v|``."""
        u = torch.zeros_like(self._check(v))
        for _ in range(self.dim):
            u, log_derivative = self.transform.inverse(v, self._params(u, context))
        return u, log_derivative.sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._one_pass(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._sequential(z, context)


class InverseAutoregressive(MaskedAutoregressive):
    """IAF layer: the MAF layer with the directions swapped, ``x = τ(z; θ(z))``. ``inverse`` (noise → data,
    sampling) takes one MADE pass, ``forward`` (data → noise, density) ``D`` passes."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._sequential(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._one_pass(z, context)


def autoregressive_flow(layer: type[MaskedAutoregressive], dim: int, n_layers: int, hidden: Sequence[int],
                        transform: ElementwiseTransform, context_dim: int = 0) -> Compose:
    """``n_layers`` autoregressive layers in the natural ordering with the coordinates reversed between consecutive
    layers, so that each layer conditions on what the previous one could not see (MAF, §3.2); each layer is
    conditional on contexts ``(N, context_dim)`` if ``context_dim > 0``."""
    layers: list[Bijection] = []
    for k in range(check_integer(n_layers, "n_layers", 1)):
        if k > 0:
            layers.append(Permutation.reverse(dim))
        layers.append(layer(dim, hidden, transform, context_dim=context_dim))
    return Compose(*layers)


class AutoregressiveFlowModel(FlowModel):
    """A flow of ``n_layers`` autoregressive ``layer`` s (MADE of widths ``hidden``) on vectors of shape ``(D,)``,
    with the elementwise ``transform`` ``"affine"`` (log-scale soft-clamped to ``±max_log_scale``) or ``"spline"``
    (``bins`` bins on ``[-bound, bound]``). MAF and IAF differ in their ``layer`` alone."""

    layer: type

    def __init__(self, shape: tuple[int, ...], n_layers: int = 5, hidden: Sequence[int] = (64, 64),
                 transform: str = "affine", max_log_scale: float = 2.0, bins: int = 8, bound: float = 4.0):
        if len(shape) != 1:
            raise ValueError(f"{type(self).__name__} takes vectors of shape (D,), got shape {tuple(shape)}")
        transform = elementwise_transform(transform, max_log_scale=max_log_scale, bins=bins, bound=bound)
        super().__init__(autoregressive_flow(self.layer, check_integer(shape[0], "D", 1), n_layers, hidden,
                                             transform))
