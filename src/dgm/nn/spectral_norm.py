"""Spectral normalisation (Miyato, Kataoka, Koyama & Yoshida, 2018, "Spectral Normalization for Generative
Adversarial Networks", §2.1–2.2 and Algorithm 1).

A layer's weight ``W`` (viewed as a matrix of ``out`` rows, ``W.flatten(1)``) is replaced by ``W / σ(W)``, where
``σ(W)`` is its largest singular value, so that the linear map is 1-Lipschitz. ``σ`` is estimated by power iteration
on a pair of vectors ``(u, v)`` kept between calls (the course's ``power_iteration_method``, homework 6):

    v ← Wᵀu / ‖Wᵀu‖,   u ← W v / ‖W v‖,   σ(W) ≈ uᵀ W v.

In training each call takes ``iterations`` steps from the stored pair (one is enough: the weights move little
between steps, Algorithm 1) and stores the new pair; ``u`` and ``v`` are constants for the gradient, which flows
through ``W`` in both ``W`` and ``σ = uᵀ W v``. In evaluation the same steps run from the stored ``u`` but the new
pair is not stored, so that the layer is a function of its state, and an average of weights and pairs (the EMA of a
run) takes its ``σ`` from its own averaged ``W``: an averaged pair is shorter than unit length where the vectors
turned during training, and its ``uᵀ W v`` would underestimate ``σ`` (a critic of an EMA run, read with the stored
pair, gave outputs in the thousands). :func:`spectral_norm`
registers it as a parametrization of a layer (``torch.nn.utils.parametrize``), like PyTorch's own, which it is
tested against.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from dgm.core import check_integer

WARM_START_ITERATIONS = 15  # power-iteration steps at construction, from random vectors, as PyTorch's
EPS = 1e-12  # the norm below which a vector is not divided by it


@torch.no_grad()
def power_iteration(matrix: Tensor, iterations: int, u: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(σ, u, v)`` after ``iterations`` steps from ``u`` (random if not given) for ``matrix`` ``(m, n)``: the
    estimate ``σ = uᵀ W v`` of its largest singular value and the left and right singular vectors ``u`` ``(m,)``
    and ``v`` ``(n,)``."""
    check_integer(iterations, "iterations", 1)
    u = F.normalize(torch.randn(matrix.shape[0], dtype=matrix.dtype, device=matrix.device) if u is None else u,
                    dim=0, eps=EPS)
    for _ in range(iterations):
        v = F.normalize(matrix.T @ u, dim=0, eps=EPS)
        u = F.normalize(matrix @ v, dim=0, eps=EPS)
    return u @ matrix @ v, u, v


class SpectralNorm(nn.Module):
    """The parametrization ``W ↦ W / σ(W)`` of a weight ``W`` ``(out, ...)`` (see the module docstring)."""

    def __init__(self, weight: Tensor, iterations: int = 1):
        super().__init__()
        if weight.dim() < 2:
            raise ValueError(f"spectral normalisation needs a weight of at least 2 dimensions, got {weight.dim()}")
        self.iterations = check_integer(iterations, "iterations", 1)
        _, u, v = power_iteration(weight.detach().flatten(1), WARM_START_ITERATIONS)
        self.register_buffer("u", u)
        self.register_buffer("v", v)

    def forward(self, weight: Tensor) -> Tensor:
        with torch.autocast(weight.device.type, enabled=False):  # σ in the weight's precision under mixed precision
            matrix = weight.flatten(1)
            _, u, v = power_iteration(matrix.detach(), self.iterations, self.u)
            if self.training:
                self.u.copy_(u)
                self.v.copy_(v)
            return weight / (u @ matrix @ v)  # differentiable in W; the pair is a constant


def spectral_norm(module: nn.Module, name: str = "weight", iterations: int = 1) -> nn.Module:
    """``module`` with its parameter ``name`` spectrally normalised (``iterations`` power-iteration steps per
    training call)."""
    parametrize.register_parametrization(module, name, SpectralNorm(getattr(module, name), iterations))
    return module


def normalise_every_layer(network: nn.Module) -> nn.Module:
    """``network`` with every linear and convolutional layer spectrally normalised (an SN-GAN critic; SAGAN's
    generator too)."""
    for module in list(network.modules()):
        if isinstance(module, nn.Linear | nn.Conv2d):
            spectral_norm(module)
    return network
