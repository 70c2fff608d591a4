"""Two-dimensional toy distributions with exact densities: FFJORD's toy data and the course's 2D data sets.

The samplers follow ``inf_train_gen`` of FFJORD (Grathwohl et al., 2019, §4.1, ``lib/toy_data.py``) in distribution,
with the same constants and scaling; 25 Gaussians follows the toy of WGAN-GP (Gulrajani et al., 2017). Where the
reference draws equally spaced angles (sklearn ``make_moons``/``make_circles``, FFJORD rings) or exactly equal class
counts, we draw i.i.d. from the distribution those samples approximate. All randomness comes from torch, so an
optional ``torch.Generator`` makes a draw reproducible.

Densities, in nats, all exact:

* Gaussians and mixtures of Gaussians, checkerboard: closed form.
* circles and rings, a circle of radius R blurred by N(0, σ²I): closed form with the modified Bessel function I₀,
  ``p(x) = exp(−(|x|² + R²)/2σ²) I₀(|x| R/σ²) / (2πσ²)``.
* moons and 2spirals, a point ``c_k(t)`` of a curve plus noise ``e ~ q``:
  ``p(x) = (1/K) Σ_k ∫ p(t) q(x − c_k(t)) dt``, by composite Gauss–Legendre quadrature in t with panels two noise
  scales long. Refinement shows an error of log p below 1e-6 wherever log p > −10, growing in the far tails (about
  1e-3 at log p = −40). For 2spirals ``q`` is FFJORD's uniform jitter convolved with Gaussian noise, closed form with
  the normal CDF Φ.
* pinwheel: the change of variables of each arm, summed over all preimages (see :class:`Pinwheel`).

Entropies: closed form where one exists, otherwise ``−∫ p log p`` by the midpoint rule on a grid of spacing
``resolution`` (the noise scale) over ``bounds``, computed once per object. For densities this smooth the rule is
accurate far beyond Monte Carlo: halving the spacing changes no entropy by more than 1e-4 nats.
"""
from __future__ import annotations

import functools
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from dgm.core import check_data, check_integer, check_sample_count
from dgm.data.base import Data
from dgm.registry import register_dataset

Bounds = tuple[tuple[float, float], tuple[float, float]]

TAIL = 6.0                # plotting boxes reach this many noise standard deviations beyond the support
BLOCK_ELEMENTS = 2 ** 22  # largest (points × nodes) intermediate of a vectorised density evaluation
FLOAT = torch.float64     # densities and samples are computed in double precision


def _in_blocks(function: Callable[[Tensor], Tensor], x: Tensor, width: int) -> Tensor:
    """``function`` applied to row blocks of ``x``, each small enough for a ``rows × width`` intermediate."""
    rows = max(1, BLOCK_ELEMENTS // width)
    return torch.cat([function(block) for block in x.split(rows)])


def _log_sum_exp_by_group(values: Tensor, group: Tensor, groups: int) -> Tensor:
    """``log Σ exp(values)`` over the entries of each group ``0..groups-1``."""
    peak = torch.full((groups,), -math.inf, dtype=values.dtype).scatter_reduce(0, group, values, "amax")
    total = torch.zeros(groups, dtype=values.dtype).index_add(0, group, torch.exp(values - peak[group]))
    return peak + total.log()


def _box(low: Tensor, high: Tensor) -> Bounds:
    return (low[0].item(), high[0].item()), (low[1].item(), high[1].item())


def grid(bounds: Bounds, step: float) -> tuple[Tensor, float]:
    """Midpoints of a grid of cells at most ``step`` wide covering ``bounds`` (float64, shape ``(M, 2)``), and the
    area of one cell: ``Σ f(points) · area`` is the midpoint rule for ``∫ f`` over the box."""
    if not step > 0:
        raise ValueError(f"the grid step must be positive, got {step!r}")
    axes, widths = [], []
    for low, high in bounds:
        if not high > low:
            raise ValueError(f"bounds must be ((x_min, x_max), (y_min, y_max)) with min < max, got {bounds!r}")
        cells = math.ceil((high - low) / step)
        width = (high - low) / cells
        axes.append(low + width * (torch.arange(cells, dtype=FLOAT) + 0.5))
        widths.append(width)
    return torch.cartesian_prod(*axes), widths[0] * widths[1]


class Toy2D(ABC):
    """A distribution on R² with a seeded sampler, an exact log-density and its differential entropy."""

    bounds: Bounds      # ((x_min, x_max), (y_min, y_max)): all but ~1e-8 of the mass, for plots and grids
    resolution: float   # a grid step fine enough for the midpoint rule (about the narrowest noise std)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples, shape ``(n, 2)``, float32."""
        return self.sample_labelled(n, generator)[0]

    def sample_labelled(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """``n`` samples and the index of the component each came from (mixture component, moon, ring, arm).

        The labels are an int64 tensor of shape ``(n,)``, or ``None`` for a distribution without components.
        """
        check_sample_count(n)
        x, labels = self._sample(n, generator)
        return x.float(), labels

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of each row of ``x`` (shape ``(N, 2)``), shape ``(N,)``, in the dtype of ``x``."""
        check_data(x, (2,), None)
        return self._log_prob(x.to(FLOAT)).to(x.dtype)

    def entropy(self) -> float:
        """Differential entropy in nats: ``−∫ p log p`` on a grid of spacing ``resolution``, unless a subclass knows
        the closed form."""
        return self._grid_entropy

    @functools.cached_property
    def _grid_entropy(self) -> float:
        points, cell_area = grid(self.bounds, self.resolution)
        density = self.log_prob(points).exp()
        return -(torch.special.xlogy(density, density).sum() * cell_area).item()

    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """Samples (float64) and labels."""

    @abstractmethod
    def _log_prob(self, x: Tensor) -> Tensor:
        """Log-density of valid float64 points."""


# -- Gaussians --------------------------------------------------------------------------------------------------------
class Gaussian2D(Toy2D):
    """``x = mean + (ε ⊙ std) R`` with ε ~ N(0, I) and rows as vectors: covariance ``Rᵀ diag(std²) R``.

    The course's HW2 data (``generate_2d_data``). Entropy in closed form: ``log(2πe) + Σ log std``.
    """

    def __init__(self, mean: tuple[float, float], std: tuple[float, float], rotation: Tensor):
        self.mean = torch.tensor(mean, dtype=FLOAT)
        self.std = torch.tensor(std, dtype=FLOAT)
        self.rotation = rotation.to(FLOAT)
        covariance = self.rotation.T @ torch.diag(self.std ** 2) @ self.rotation
        self._normal = torch.distributions.MultivariateNormal(self.mean, covariance_matrix=covariance)
        spread = TAIL * covariance.diagonal().sqrt()
        self.bounds = _box(self.mean - spread, self.mean + spread)
        self.resolution = self.std.min().item()

    def _sample(self, n, generator):
        noise = torch.randn(n, 2, generator=generator, dtype=FLOAT)
        return self.mean + (noise * self.std) @ self.rotation, None

    def _log_prob(self, x):
        return self._normal.log_prob(x)

    def entropy(self) -> float:
        return 1 + math.log(2 * math.pi) + self.std.log().sum().item()


class GaussianMixture2D(Toy2D):
    """Equal-weight mixture of isotropic Gaussians ``N(centre_k, std² I)``; labels are the component index."""

    def __init__(self, centres: Tensor, std: float):
        self.centres = centres.to(FLOAT)
        self.std = std
        self.bounds = _box(self.centres.amin(0) - TAIL * std, self.centres.amax(0) + TAIL * std)
        self.resolution = std

    def _sample(self, n, generator):
        labels = torch.randint(len(self.centres), (n,), generator=generator)
        noise = self.std * torch.randn(n, 2, generator=generator, dtype=FLOAT)
        return self.centres[labels] + noise, labels

    def _log_prob(self, x):
        squared_distances = ((x[:, None, :] - self.centres) ** 2).sum(-1)
        return (torch.logsumexp(-squared_distances / (2 * self.std ** 2), dim=1)
                - math.log(len(self.centres)) - math.log(2 * math.pi * self.std ** 2))


def _eight_directions() -> Tensor:
    """Unit vectors (±1, 0), (0, ±1), (±1/√2, ±1/√2) in FFJORD's order."""
    r = 1 / math.sqrt(2)
    return torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)], dtype=FLOAT)


# -- checkerboard -----------------------------------------------------------------------------------------------------
class Checkerboard(Toy2D):
    """Uniform on the 8 squares (i, j) of side 2 in [−4, 4)², i = ⌊x/2⌋, j = ⌊y/2⌋, with i + j even.

    FFJORD: ``x ~ U[−2, 2)``, ``y ~ U[0, 1) − 2·Bernoulli(½) + (⌊x⌋ mod 2)``, both times 2. Density 1/32 on the squares,
    entropy log 32.
    """

    bounds = ((-4.0, 4.0), (-4.0, 4.0))
    resolution = 0.5  # any grid of these bounds with a step dividing 2 follows the squares' edges
    AREA = 32.0

    def _sample(self, n, generator):
        x = 4 * torch.rand(n, generator=generator, dtype=FLOAT) - 2
        flip = torch.randint(0, 2, (n,), generator=generator)
        y = torch.rand(n, generator=generator, dtype=FLOAT) - 2 * flip + torch.floor(x) % 2
        return 2 * torch.stack([x, y], dim=1), None

    def _log_prob(self, x):
        on_board = ((x >= -4) & (x < 4)).all(dim=1)
        dark = torch.floor(x / 2).sum(dim=1) % 2 == 0
        return torch.full_like(x[:, 0], -math.log(self.AREA)).masked_fill(~(on_board & dark), -math.inf)

    def entropy(self) -> float:
        return math.log(self.AREA)


# -- curves blurred by noise: moons, circles, rings, 2spirals ---------------------------------------------------------
class GaussianNoise:
    """``e ~ N(0, std² I)`` in the plane."""

    def __init__(self, std: float):
        self.std = std
        self.scale = std   # the shortest length over which the density changes
        self.reach = TAIL * std
        self.cutoff = 10 * std  # at this much more distance the kernel falls by a factor below e^{-50}

    def sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.std * torch.randn(n, 2, generator=generator, dtype=FLOAT)

    def log_prob(self, e: Tensor) -> Tensor:
        return -(e ** 2).sum(-1) / (2 * self.std ** 2) - math.log(2 * math.pi * self.std ** 2)


def _log_normal_cdf_difference(a: Tensor, b: Tensor) -> Tensor:
    """``log(Φ(a) − Φ(b))`` for ``a > b``, accurate in both tails (uses ``Φ(a) − Φ(b) = Φ(−b) − Φ(−a)``)."""
    flip = a + b > 0
    upper, lower = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_upper = torch.special.log_ndtr(upper)
    return log_upper + torch.log(-torch.expm1(torch.special.log_ndtr(lower) - log_upper))


class BoxGaussianNoise:
    """``e = u + ε`` with ``u`` uniform on the square [−h, h]² and ``ε ~ N(0, std² I)``.

    Per coordinate the density is ``(Φ((e + h)/std) − Φ((e − h)/std)) / 2h``.
    """

    def __init__(self, half_width: float, std: float):
        self.half_width, self.std = half_width, std
        self.scale = std
        self.reach = half_width + TAIL * std
        self.cutoff = 10 * std + 2 * math.sqrt(2) * half_width  # as for GaussianNoise, with the box's diagonal

    def sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        box = self.half_width * (2 * torch.rand(n, 2, generator=generator, dtype=FLOAT) - 1)
        return box + self.std * torch.randn(n, 2, generator=generator, dtype=FLOAT)

    def log_prob(self, e: Tensor) -> Tensor:
        h = self.half_width
        per_coordinate = _log_normal_cdf_difference((e + h) / self.std, (e - h) / self.std) - math.log(2 * h)
        return per_coordinate.sum(-1)


def gauss_legendre(start: float, stop: float, panels: int, order: int = 8) -> tuple[Tensor, Tensor]:
    """Nodes and weights of the composite Gauss–Legendre rule with ``panels`` equal panels on ``[start, stop]``."""
    unit_nodes, unit_weights = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(order))
    half = (stop - start) / panels / 2
    centres = start + half * (2 * torch.arange(panels, dtype=FLOAT) + 1)
    nodes = (centres[:, None] + half * unit_nodes).reshape(-1)
    weights = (half * unit_weights).repeat(panels)
    return nodes, weights


class NoisyCurves(Toy2D):
    """``x = c_k(t) + e``: curve ``k`` chosen uniformly among K, parameter ``t ~ p(t)`` on an interval, noise ``e``.

    ``p(x) = (1/K) Σ_k ∫ p(t) q(x − c_k(t)) dt`` by composite Gauss–Legendre quadrature (:meth:`quadrature_log_prob`),
    with panels of curve length at most ``PANEL_LENGTH`` noise scales. Labels are the curve index k.
    """

    PANEL_LENGTH = 2.0
    ORDER = 8

    def __init__(self, noise: GaussianNoise | BoxGaussianNoise, parameter_range: tuple[float, float]):
        self.noise = noise
        start, stop = parameter_range
        panels = math.ceil(self._longest_curve(start, stop) / (self.PANEL_LENGTH * noise.scale))
        nodes, weights = gauss_legendre(start, stop, panels, self.ORDER)
        curves = self.curves(nodes)
        self.curve_count = len(curves)
        self._curve_points = curves.reshape(-1, 2)
        log_weights = weights.log() + self.parameter_log_density(nodes) - math.log(self.curve_count)
        self._log_weights = log_weights.repeat(self.curve_count)
        self.bounds = _box(self._curve_points.amin(0) - noise.reach, self._curve_points.amax(0) + noise.reach)
        self.resolution = noise.scale

    @abstractmethod
    def curves(self, t: Tensor) -> Tensor:
        """The points ``c_k(t)`` of all K curves, shape ``(K, *t.shape, 2)``."""

    @abstractmethod
    def sample_parameter(self, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` draws of ``t ~ p(t)``."""

    @abstractmethod
    def parameter_log_density(self, t: Tensor) -> Tensor:
        """``log p(t)``, elementwise."""

    def quadrature_log_prob(self, x: Tensor) -> Tensor:
        """The log-density by quadrature over the curve parameter (the density itself for moons and 2spirals)."""
        check_data(x, (2,), None)
        return self._quadrature(x.to(FLOAT)).to(x.dtype)

    def _quadrature(self, x: Tensor) -> Tensor:
        return _in_blocks(self._block_quadrature, x, len(self._curve_points))

    def _block_quadrature(self, x: Tensor) -> Tensor:
        """The quadrature sum over the nodes no farther than ``noise.cutoff`` beyond each point's nearest node.

        Each dropped term is below e^{-50} times the nearest node's, times the ratio of their weights (at most 2e4),
        so dropping all of them changes the sum by less than 1e-14 relative.
        """
        offsets = x[:, None, :] - self._curve_points
        distances = offsets.norm(dim=-1)
        point, node = torch.nonzero(distances <= distances.amin(1, keepdim=True) + self.noise.cutoff, as_tuple=True)
        terms = self.noise.log_prob(offsets[point, node]) + self._log_weights[node]
        return _log_sum_exp_by_group(terms, point, len(x))

    def _log_prob(self, x):
        return self._quadrature(x)

    def _sample(self, n, generator):
        t = self.sample_parameter(n, generator)
        labels = torch.randint(self.curve_count, (n,), generator=generator)
        points = self.curves(t)[labels, torch.arange(n)]
        return points + self.noise.sample(n, generator), labels

    def _longest_curve(self, start: float, stop: float) -> float:
        polyline = self.curves(torch.linspace(start, stop, 4097, dtype=FLOAT))
        return polyline.diff(dim=1).norm(dim=-1).sum(dim=1).max().item()


class Moons(NoisyCurves):
    """sklearn ``make_moons(noise)`` mapped by ``x ↦ scale·x + shift``, with t ~ U[0, π]:

    the upper half circle ``(cos t, sin t)`` (label 0) and the lower one ``(1 − cos t, ½ − sin t)`` (label 1), plus
    ``N(0, noise²)`` noise before the map. FFJORD's moons: scale 2, shift (−1, −0.2); the course's HW3: scale 1.
    """

    def __init__(self, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0), noise: float = 0.1):
        self.scale, self.shift = scale, torch.tensor(shift, dtype=FLOAT)
        super().__init__(GaussianNoise(scale * noise), (0.0, math.pi))

    def curves(self, t):
        upper = torch.stack([torch.cos(t), torch.sin(t)], dim=-1)
        lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=-1)
        return self.shift + self.scale * torch.stack([upper, lower])

    def sample_parameter(self, n, generator):
        return math.pi * torch.rand(n, generator=generator, dtype=FLOAT)

    def parameter_log_density(self, t):
        return torch.full_like(t, -math.log(math.pi))


class NoisyCircles(NoisyCurves):
    """Equal-weight concentric circles of the given radii (label = index), t ~ U[0, 2π), noise ``N(0, std² I)``.

    Exact density of one circle, with ``i0e(z) = e^{−z} I₀(z)`` for stability:
    ``log p(x) = −(|x| − R)²/2σ² + log i0e(|x| R/σ²) − log 2πσ²``.
    """

    def __init__(self, radii: tuple[float, ...], std: float):
        self.radii = torch.tensor(radii, dtype=FLOAT)
        super().__init__(GaussianNoise(std), (0.0, 2 * math.pi))

    def curves(self, t):
        circle = torch.stack([torch.cos(t), torch.sin(t)], dim=-1)
        return self.radii.reshape(-1, *[1] * t.dim(), 1) * circle

    def sample_parameter(self, n, generator):
        return 2 * math.pi * torch.rand(n, generator=generator, dtype=FLOAT)

    def parameter_log_density(self, t):
        return torch.full_like(t, -math.log(2 * math.pi))

    def _log_prob(self, x):
        variance = self.noise.std ** 2
        r = x.norm(dim=1, keepdim=True)
        log_rings = -(r - self.radii) ** 2 / (2 * variance) + torch.special.i0e(r * self.radii / variance).log()
        return torch.logsumexp(log_rings, dim=1) - math.log(len(self.radii)) - math.log(2 * math.pi * variance)


class TwoSpirals(NoisyCurves):
    """FFJORD's 2spirals: ``t = 3π√U`` (so ``p(t) = 2t/(3π)²``), arm ``s = ±1`` (label 0, 1), and

    ``x = s·((−t cos t, t sin t) + 0.5·U[0, 1)²)/3 + N(0, 0.1² I)``. The jitter ``s·U[0, 1)²/6`` is a box of half-width
    1/12 around ``s·(1/12, 1/12)``, so the curves are ``c_s(t) = s·((−t cos t, t sin t)/3 + 1/12)`` and the noise is the
    box convolved with the Gaussian.
    """

    TURN = 3 * math.pi      # 540 degrees
    JITTER = 0.5 / 3        # side of the jitter square
    STD = 0.1

    def __init__(self):
        super().__init__(BoxGaussianNoise(self.JITTER / 2, self.STD), (0.0, self.TURN))

    def curves(self, t):
        arm = torch.stack([-t * torch.cos(t), t * torch.sin(t)], dim=-1) / 3 + self.JITTER / 2
        return torch.stack([arm, -arm])

    def sample_parameter(self, n, generator):
        return self.TURN * torch.rand(n, generator=generator, dtype=FLOAT).sqrt()

    def parameter_log_density(self, t):
        return torch.log(2 * t / self.TURN ** 2)


# -- pinwheel ---------------------------------------------------------------------------------------------------------
class Pinwheel(Toy2D):
    """FFJORD's pinwheel: arm k uniform in 0..4, ``f ~ N((1, 0), diag(0.3², 0.1²))``, ``y = g_k(f) = 2 R(−a) f``

    with ``a = 2πk/5 + ¼ exp(f₁)`` and ``R`` the rotation matrix. In polar coordinates ``f = ρ(cos φ, sin φ)`` the map
    keeps ``|y| = 2ρ`` and sends the angle to ``h(φ) − 2πk/5`` with ``h(φ) = φ − ¼ exp(ρ cos φ)``, and
    ``det ∂g_k/∂f = 4 h'(φ) = 4(1 + ¼ exp(f₁) f₂)``. So, summing over every preimage,

        ``p(y) = (1/5) Σ_k Σ_{φ: h(φ) ≡ arg y + 2πk/5} N(f(φ)) / (4 |h'(φ)|)``.

    With ``u = φ − β`` and ``β = arg y + 2πk/5`` the preimages are the roots of ``u = ¼ exp(ρ cos(β + u))``, all in
    ``[¼e^{−ρ}, ¼e^{ρ}]``: a grid of ``GRID`` nodes brackets them and bisection refines them. The result is exact up
    to pairs of roots closer than the grid spacing, which only occur near the folds ``h' = 0`` of ``g_k``, where ``f``
    has density below 3e-8 of its peak. Labels are the arm index.
    """

    ARMS = 5
    RATE = 0.25
    MEAN = (1.0, 0.0)
    STD = (0.3, 0.1)
    GRID = 33
    BISECTIONS = 40

    def __init__(self):
        self.arm_angles = 2 * math.pi * torch.arange(self.ARMS, dtype=FLOAT) / self.ARMS
        reach = 2 * (self.MEAN[0] + TAIL * self.STD[0])
        self.bounds = ((-reach, reach), (-reach, reach))
        self.resolution = self.STD[1]  # half the arms' width 2·0.1, as they thin where they curl

    def _sample(self, n, generator):
        labels = torch.randint(self.ARMS, (n,), generator=generator)
        f = torch.tensor(self.MEAN, dtype=FLOAT) + torch.tensor(self.STD, dtype=FLOAT) * torch.randn(
            n, 2, generator=generator, dtype=FLOAT)
        angle = self.arm_angles[labels] + self.RATE * torch.exp(f[:, 0])
        cos, sin = torch.cos(angle), torch.sin(angle)
        y = torch.stack([f[:, 0] * cos + f[:, 1] * sin, -f[:, 0] * sin + f[:, 1] * cos], dim=1)
        return 2 * y, labels

    def _log_prob(self, x):
        return _in_blocks(self._block_log_prob, x, self.ARMS * self.GRID)

    def _block_log_prob(self, y: Tensor) -> Tensor:
        rho = (y.norm(dim=1) / 2).repeat_interleave(self.ARMS)
        beta = (torch.atan2(y[:, 1], y[:, 0])[:, None] + self.arm_angles).reshape(-1)
        pair, u = self._preimage_offsets(rho, beta)
        phi = beta[pair] + u
        f = rho[pair, None] * torch.stack([torch.cos(phi), torch.sin(phi)], dim=1)
        mean, std = torch.tensor(self.MEAN, dtype=FLOAT), torch.tensor(self.STD, dtype=FLOAT)
        log_normal = (-((f - mean) / std) ** 2 / 2 - torch.log(std)).sum(1) - math.log(2 * math.pi)
        log_jacobian = math.log(4) + torch.log(torch.abs(1 + self.RATE * torch.exp(f[:, 0]) * f[:, 1]))
        point = torch.div(pair, self.ARMS, rounding_mode="floor")
        return _log_sum_exp_by_group(log_normal - log_jacobian, point, len(y)) - math.log(self.ARMS)

    def _residual(self, u: Tensor, rho: Tensor, beta: Tensor) -> Tensor:
        return u - self.RATE * torch.exp(rho * torch.cos(beta + u))

    def _preimage_offsets(self, rho: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
        """All roots u of the residual for each (ρ, β) pair: the pair's index and the root, one entry per root."""
        margin = 0.01  # keeps the residual strictly negative at the first node and positive at the last
        low = self.RATE * torch.exp(-rho) - margin
        high = self.RATE * torch.exp(rho) + margin
        grid = low[:, None] + (high - low)[:, None] * torch.linspace(0, 1, self.GRID, dtype=FLOAT)
        positive = self._residual(grid, rho[:, None], beta[:, None]) >= 0
        pair, cell = torch.nonzero(positive[:, :-1] != positive[:, 1:], as_tuple=True)
        left, right, left_positive = grid[pair, cell], grid[pair, cell + 1], positive[pair, cell]
        rho, beta = rho[pair], beta[pair]
        for _ in range(self.BISECTIONS):
            middle = (left + right) / 2
            same_as_left = (self._residual(middle, rho, beta) >= 0) == left_positive
            left, right = torch.where(same_as_left, middle, left), torch.where(same_as_left, right, middle)
        return pair, (left + right) / 2


# -- the registry of toys ---------------------------------------------------------------------------------------------
_BUILDERS: dict[str, Callable[..., Toy2D]] = {}


def toy_data(name: str, distribution: Toy2D, n_train: int = 20000, n_test: int = 20000, seed: int = 0) -> Data:
    """Fresh train and test draws of ``distribution`` with the seeds ``2·seed`` and ``2·seed + 1``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    check_integer(n_train, "n_train", 1)
    check_integer(n_test, "n_test", 1)
    train, train_labels = distribution.sample_labelled(n_train, torch.Generator().manual_seed(2 * seed))
    test, test_labels = distribution.sample_labelled(n_test, torch.Generator().manual_seed(2 * seed + 1))
    return Data(name, train, test, levels=None, train_labels=train_labels, test_labels=test_labels,
                distribution=distribution)


def _toy(name: str, description: str):
    """Decorator: ``build(**options) -> Toy2D`` becomes ``distribution(name)`` and the data set ``name``."""
    def decorate(build: Callable[..., Toy2D]) -> Callable[..., Toy2D]:
        _BUILDERS[name] = build

        @register_dataset(name, description)
        def factory(n_train: int = 20000, n_test: int = 20000, seed: int = 0, **options) -> Data:
            return toy_data(name, distribution(name, **options), n_train, n_test, seed)

        factory.__signature__ = _with_options(factory, build)
        return build
    return decorate


def _with_options(factory: Callable[..., Data], build: Callable[..., Toy2D]) -> inspect.Signature:
    """The signature of a toy's data-set ``factory`` with its ``**options`` spelled out as the options of ``build``:
    the arguments that ``dgm.data.load`` checks and lists."""
    own = [parameter for parameter in inspect.signature(factory).parameters.values()
           if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    options = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for parameter in inspect.signature(build).parameters.values()]
    return inspect.Signature(own + options)


@functools.cache
def distribution(name: str, **options) -> Toy2D:
    """The distribution of the registered toy ``name``; one shared object per options, so entropies are cached."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown 2D toy {name!r}; known toys: {', '.join(sorted(_BUILDERS))}")
    signature = inspect.signature(_BUILDERS[name])
    try:
        signature.bind(**options)
    except TypeError:
        accepted = list(signature.parameters)
        raise ValueError(f"toy {name!r} takes the options {accepted}, got {sorted(options)}") from None
    return _BUILDERS[name](**options)


@_toy("moons", "FFJORD two moons: sklearn make_moons(noise=0.1) times 2 plus (-1, -0.2); exact density, H = 2.394")
def _moons() -> Toy2D:
    return Moons(scale=2.0, shift=(-1.0, -0.2))


@_toy("moons-raw", "sklearn make_moons(noise=0.1) unscaled, the course's HW3 data; exact density, H = 1.008")
def _moons_raw() -> Toy2D:
    return Moons()


@_toy("circles", "FFJORD circles: make_circles(factor=0.5, noise=0.08) times 3; exact density, H = 3.268")
def _circles() -> Toy2D:
    return NoisyCircles(radii=(3.0, 1.5), std=0.24)


@_toy("rings", "FFJORD rings: 4 circles of radius 3, 2.25, 1.5, 0.75 with N(0, 0.08^2) noise; H = 2.623")
def _rings() -> Toy2D:
    return NoisyCircles(radii=(3.0, 2.25, 1.5, 0.75), std=0.08)


@_toy("8gaussians", "FFJORD 8 Gaussians: centres 4 (cos, sin)(k pi/4), std 0.5, all over 1.414; H = 2.832")
def _eight_gaussians() -> Toy2D:
    return GaussianMixture2D(4 * _eight_directions() / 1.414, std=0.5 / 1.414)


@_toy("8gaussians-hw5", "The course's HW5 8 Gaussians: centres 2 (cos, sin)(k pi/4), std 0.02, over 1.414; H = -3.600")
def _eight_gaussians_hw5() -> Toy2D:
    return GaussianMixture2D(2 * _eight_directions() / 1.414, std=0.02 / 1.414)


@_toy("25gaussians", "WGAN-GP 25 Gaussians: centres 2(i, j), i, j in -2..2, std 0.05, all over 2.828; H = -2.014")
def _twenty_five_gaussians() -> Toy2D:
    steps = torch.arange(-2, 3, dtype=FLOAT)
    grid = torch.cartesian_prod(steps, steps)
    return GaussianMixture2D(2 * grid / 2.828, std=0.05 / 2.828)


@_toy("checkerboard", "FFJORD checkerboard: uniform on 8 squares of side 2 in [-4, 4]^2; H = log 32 = 3.466")
def _checkerboard() -> Toy2D:
    return Checkerboard()


@_toy("2spirals", "FFJORD two spirals (540 degrees, uniform jitter, noise 0.1); exact density, H = 2.645")
def _two_spirals() -> Toy2D:
    return TwoSpirals()


@_toy("pinwheel", "FFJORD pinwheel with 5 arms; exact density by change of variables, H = 2.318")
def _pinwheel() -> Toy2D:
    return Pinwheel()


@_toy("gaussians-2d", "The course's HW2 Gaussian: mean (2, 3), std (3, 1), mode 'rotated' (default) or 'diagonal'")
def _gaussians_2d(mode: str = "rotated") -> Toy2D:
    rotations = {"rotated": torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=FLOAT) * math.sqrt(2) / 2,
                 "diagonal": torch.eye(2, dtype=FLOAT)}
    if mode not in rotations:
        raise ValueError(f"gaussians-2d mode must be 'rotated' (the course's 'multivariate') or 'diagonal' "
                         f"('univariate'), got {mode!r}")
    return Gaussian2D(mean=(2.0, 3.0), std=(3.0, 1.0), rotation=rotations[mode])
