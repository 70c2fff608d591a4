"""Unnormalised 2D target densities ``p(z) ∝ exp(−U(z))`` for reverse-KL fitting.

The four energies of Rezende & Mohamed (2015), "Variational Inference with Normalizing Flows", Table 1:

    U1(z) = ½((‖z‖ − 2)/0.4)² − log(exp(−½((z₁ − 2)/0.6)²) + exp(−½((z₁ + 2)/0.6)²))
    U2(z) = ½((z₂ − w₁(z))/0.4)²
    U3(z) = −log(exp(−½((z₂ − w₁(z))/0.35)²) + exp(−½((z₂ − w₁(z) + w₂(z))/0.35)²))
    U4(z) = −log(exp(−½((z₂ − w₁(z))/0.4)²) + exp(−½((z₂ − w₁(z) + w₃(z))/0.35)²))

with ``w₁(z) = sin(2πz₁/4)``, ``w₂(z) = 3 exp(−½((z₁ − 1)/0.6)²)``, ``w₃(z) = 3 σ((z₁ − 1)/0.3)`` and
``σ(x) = 1/(1 + e^{−x})``.

``exp(−U2)``, ``exp(−U3)`` and ``exp(−U4)`` do not decay along z₁, so they are normalisable only on a bounded set: each
target is ``exp(−U)/Z`` on its box ``bounds`` (the paper's plotting range [−4, 4]²), ``Z = ∫_bounds exp(−U)``. U1 is
normalisable on R² and its box misses about 1e-8 of the mass. A reverse-KL fit of ``q`` reports
``KL(q ‖ p) = E_q[log q(z) + U(z)] + log Z``, exact when ``q`` puts its mass inside the box. These are targets, not
data sets: they have no samples.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dgm.core import check_data
from dgm.data.toy2d import Bounds, grid as midpoint_grid


def _w1(z: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _minus_log_sum_of_gaussian_bumps(first: Tensor, second: Tensor) -> Tensor:
    """``−log(exp(−½ first²) + exp(−½ second²))``, computed stably."""
    return -torch.logaddexp(-0.5 * first ** 2, -0.5 * second ** 2)


def _u1(z: Tensor) -> Tensor:
    ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
    return ring + _minus_log_sum_of_gaussian_bumps((z[:, 0] - 2) / 0.6, (z[:, 0] + 2) / 0.6)


def _u2(z: Tensor) -> Tensor:
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2


def _u3(z: Tensor) -> Tensor:
    wave = z[:, 1] - _w1(z)
    return _minus_log_sum_of_gaussian_bumps(wave / 0.35, (wave + _w2(z)) / 0.35)


def _u4(z: Tensor) -> Tensor:
    wave = z[:, 1] - _w1(z)
    return _minus_log_sum_of_gaussian_bumps(wave / 0.4, (wave + _w3(z)) / 0.35)


@dataclass(frozen=True)
class Energy:
    """An energy ``U`` on the plane whose target density is ``exp(−U)/Z`` on the box ``bounds``."""

    name: str
    description: str
    formula: Callable[[Tensor], Tensor]
    bounds: Bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def energy(self, z: Tensor) -> Tensor:
        """``U(z)`` for each row of ``z`` (shape ``(N, 2)``), shape ``(N,)``."""
        return self.formula(check_data(z, (2,), None, name="z"))

    def log_density(self, z: Tensor) -> Tensor:
        """The unnormalised log-density ``−U(z)``, shape ``(N,)``."""
        return -self.energy(z)


ENERGIES: dict[str, Energy] = {energy.name: energy for energy in (
    Energy("U1", "a ring of radius 2 split into two halves (Rezende & Mohamed 2015, Table 1)", _u1),
    Energy("U2", "a sine wave z2 = sin(pi z1 / 2) blurred with std 0.4", _u2),
    Energy("U3", "the sine wave and a copy lowered by a Gaussian bump near z1 = 1", _u3),
    Energy("U4", "the sine wave and a copy lowered by a sigmoid step at z1 = 1", _u4),
)}


def log_normalizer(name: str, grid: int = 1000) -> float:
    """``log Z = log ∫_bounds exp(−U)`` by the midpoint rule with ``grid`` cells along the box's longer side."""
    if name not in ENERGIES:
        raise ValueError(f"unknown energy {name!r}; known energies: {', '.join(ENERGIES)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an integer number of cells per axis, at least 2, got {grid!r}")
    energy = ENERGIES[name]
    step = max(high - low for low, high in energy.bounds) / grid
    points, cell_area = midpoint_grid(energy.bounds, step)
    return (torch.logsumexp(energy.log_density(points), dim=0) + math.log(cell_area)).item()
