"""Unnormalised 2D target densities ``p(z) ∝ exp(−U(z))`` for reverse-KL fitting, and their samples as data sets.

The four energies of Rezende & Mohamed (2015), "Variational Inference with Normalizing Flows", Table 1:

    U1(z) = ½((‖z‖ − 2)/0.4)² − log(exp(−½((z₁ − 2)/0.6)²) + exp(−½((z₁ + 2)/0.6)²))
    U2(z) = ½((z₂ − w₁(z))/0.4)²
    U3(z) = −log(exp(−½((z₂ − w₁(z))/0.35)²) + exp(−½((z₂ − w₁(z) + w₂(z))/0.35)²))
    U4(z) = −log(exp(−½((z₂ − w₁(z))/0.4)²) + exp(−½((z₂ − w₁(z) + w₃(z))/0.35)²))

with ``w₁(z) = sin(2πz₁/4)``, ``w₂(z) = 3 exp(−½((z₁ − 1)/0.6)²)``, ``w₃(z) = 3 σ((z₁ − 1)/0.3)`` and
``σ(x) = 1/(1 + e^{−x})``.

``exp(−U2)``, ``exp(−U3)`` and ``exp(−U4)`` do not decay along z₁, so they are normalisable only on a bounded set: the
paper's box ``bounds`` = [−4, 4]², with ``log_normalizer`` giving ``log ∫_bounds exp(−U)``. A reverse-KL fit needs a
target that is a density on the whole plane, so :class:`EnergyTarget` confines each energy by a stiff quadratic wall
outside the box,

    U_target(z) = U(z) + ½ (d(z)/σ_w)²,    d(z) = distance from z to the box,  σ_w = ``WALL_STD`` = 0.02,

which leaves U unchanged inside the box and makes ``Z = ∫ exp(−U_target)`` finite (the wall holds 0.6% of the mass
for U2-U4 and nothing measurable for U1, whose box misses about 1e-8 of its mass). Then

    KL(q ‖ p) = E_q[log q(z) + U_target(z)] + log Z ≥ 0

is exact for any ``q``. The data sets ``energy-u1`` … ``energy-u4`` hold samples of ``p = exp(−U_target)/Z``: a cell of
a grid of step ``GRID_STEP`` = 0.005 over the box widened by ``6 σ_w`` is drawn with probability ``exp(−U_target)``
at its centre times its area, normalised, and the point is placed uniformly within the cell. The samples follow that
piecewise-constant density, whose KL divergence from ``p`` is about ``(h²/24) E_p‖∇U‖²`` ≈ 1e-5 nats; ``log Z`` and
the entropy come from the same grid by the midpoint rule (error of the same order). The data set's
``distribution.log_prob`` is ``−U_target − log Z``, so the test NLL of a model on these samples is
``KL(p ‖ q) + H(p)``.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dgm.core import check_data, check_integer, check_sample_count
from dgm.data.base import Data
from dgm.data.toy2d import FLOAT, Bounds, grid as midpoint_grid
from dgm.registry import register_dataset

WALL_STD = 0.02     # stiffness of the wall that confines each target to its box
WALL_REACH = 6      # the data sets' grid reaches this many wall stds beyond the box
GRID_STEP = 0.005   # cell width of the grid the samples, log Z and the entropy come from


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

    def confined_energy(self, z: Tensor) -> Tensor:
        """``U(z) + ½ (d(z)/σ_w)²`` with ``d`` the distance from ``z`` to the box: the energy of the target."""
        low = z.new_tensor([low for low, _ in self.bounds])
        high = z.new_tensor([high for _, high in self.bounds])
        distance = (torch.relu(low - z) + torch.relu(z - high)).norm(dim=1)
        return self.energy(z) + 0.5 * (distance / WALL_STD) ** 2


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


class EnergyTarget:
    """The density ``exp(−U_target)/Z`` of an energy confined to its box (see the module docstring): ``energy``,
    exact ``log_prob`` up to the grid's ``log Z``, ``entropy``, and ``sample`` from the grid."""

    def __init__(self, energy: Energy):
        self.name = energy.name
        self.base = energy  # U itself, unconfined
        reach = WALL_REACH * WALL_STD
        self.bounds: Bounds = tuple((low - reach, high + reach) for low, high in energy.bounds)

    def energy(self, z: Tensor) -> Tensor:
        """``U_target(z)`` for each row of ``z`` (shape ``(N, 2)``), shape ``(N,)``, in the dtype of ``z``."""
        return self.base.confined_energy(z)

    @functools.cached_property
    def _grid(self) -> tuple[Tensor, float, Tensor]:
        """Cell centres, cell area and the log-probability of each cell (normalised)."""
        points, cell_area = midpoint_grid(self.bounds, GRID_STEP)
        log_weights = -self.energy(points) + math.log(cell_area)
        return points, cell_area, log_weights - torch.logsumexp(log_weights, dim=0)

    @functools.cached_property
    def log_normalizer(self) -> float:
        """``log Z = log ∫ exp(−U_target)`` by the midpoint rule on the grid."""
        points, cell_area, _ = self._grid
        return (torch.logsumexp(-self.energy(points), dim=0) + math.log(cell_area)).item()

    def log_prob(self, x: Tensor) -> Tensor:
        """``−U_target(x) − log Z`` of each row of ``x`` (shape ``(N, 2)``), shape ``(N,)``, in the dtype of ``x``."""
        check_data(x, (2,), None)
        return (-self.energy(x.to(FLOAT)) - self.log_normalizer).to(x.dtype)

    def entropy(self) -> float:
        """``−∫ p log p`` in nats, by the midpoint rule on the grid."""
        return self._entropy

    @functools.cached_property
    def _entropy(self) -> float:
        points, cell_area, log_cell = self._grid
        return -(log_cell.exp() * (log_cell - math.log(cell_area))).sum().item()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples (float32, shape ``(n, 2)``): a grid cell drawn by its probability, a uniform point in it."""
        check_sample_count(n)
        points, cell_area, log_cell = self._grid
        cells = torch.multinomial(log_cell.exp(), n, replacement=True, generator=generator)
        widths = torch.tensor([(high - low) / math.ceil((high - low) / GRID_STEP) for low, high in self.bounds],
                              dtype=FLOAT)  # the cell sides, as midpoint_grid fits them to the box
        jitter = (torch.rand(n, 2, generator=generator, dtype=FLOAT) - 0.5) * widths
        return (points[cells] + jitter).float()


@functools.cache
def target(name: str) -> EnergyTarget:
    """The target density of the energy ``name`` (``"U1"`` … ``"U4"``), one shared object so the grid is built once."""
    if name not in ENERGIES:
        raise ValueError(f"unknown energy {name!r}; known energies: {', '.join(ENERGIES)}")
    return EnergyTarget(ENERGIES[name])


def _register_energy_data(name: str) -> None:
    @register_dataset(f"energy-{name.lower()}", f"samples of exp(-{name})/Z confined to [-4, 4]^2: "
                      f"{ENERGIES[name].description}")
    def factory(n_train: int = 20000, n_test: int = 20000, seed: int = 0) -> Data:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        check_integer(n_train, "n_train", 1)
        check_integer(n_test, "n_test", 1)
        distribution = target(name)
        train = distribution.sample(n_train, torch.Generator().manual_seed(2 * seed))
        test = distribution.sample(n_test, torch.Generator().manual_seed(2 * seed + 1))
        return Data(f"energy-{name.lower()}", train, test, distribution=distribution)


for _name in ENERGIES:
    _register_energy_data(_name)
