"""Pictures of samples, densities and training curves, written as PNG files without a display.

The figures are the ones the OzonMasters 2022 DGM course draws with its ``dgm_utils`` helpers: grids of image
samples (``show_samples``), 2D scatters of samples over data (``visualize_2d_samples``), a density evaluated on a
grid (``visualize_2d_densities``), train and test curves (``plot_training_curves``), the learned versus true
histograms of seminars 1 and 2, the latent space of a flow or a VAE coloured by label (homeworks 2 and 3), and
homework 2's pictures of a VAE: reconstruction pairs, interpolations, samples with and without decoder noise; and a
diffusion model's forward and reverse processes and its score field.

Every figure is built with the object-oriented API (``matplotlib.figure.Figure``), never with ``pyplot``, so no
display is needed and no figure outlives the call. Each ``_..._figure`` function returns the figure before it is
saved, which lets tests inspect what was drawn. The density plot also reports the midpoint-rule integral
``Σ p(x_ij) · Δx · Δy`` over the grid: a normalised density whose mass lies inside the box integrates to about 1.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from torch import Tensor

from dgm.core import check_data, check_integer
from dgm.distributions.codec import to_8bit_scale

Bounds = tuple[tuple[float, float], tuple[float, float]]
ArrayLike = Tensor | np.ndarray | Sequence

PAD_VALUE = 128  # mid-grey between grid cells: visible next to black and to white backgrounds
DPI = 100
SPLIT_ORDER = {"train": 0, "test": 1}  # drawing order (and so colours C0, C1) of the curves within a panel


# -- image grids ------------------------------------------------------------------------------------------------------
def image_grid(images: ArrayLike, levels: int, nrow: int | None = None, padding: int = 1) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` holding integers ``0..levels-1`` into one ``uint8`` RGB picture ``(H', W', 3)``.

    Value ``k`` becomes ``round(255 k / (levels - 1))``; one channel is shown grey, three as RGB. ``nrow`` is the
    number of images per row (as in torchvision's ``make_grid``), by default ``ceil(sqrt(N))``. ``padding`` grey
    pixels separate the images and frame the grid, so ``H' = rows (H + padding) + padding``; slots after the last
    image are grey.
    """
    pixels = _image_pixels(images, levels)
    count, height, width, _ = pixels.shape
    nrow = math.ceil(math.sqrt(count)) if nrow is None else nrow
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive integer (images per row), got {nrow!r}")
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer number of pixels, got {padding!r}")
    rows = math.ceil(count / nrow)
    cell_height, cell_width = height + padding, width + padding
    cells = np.full((rows * nrow, cell_height, cell_width, 3), PAD_VALUE, dtype=np.uint8)
    cells[:count, padding:, padding:] = pixels
    grid = cells.reshape(rows, nrow, cell_height, cell_width, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * cell_height, nrow * cell_width, 3)
    return np.pad(grid, ((0, padding), (0, padding), (0, 0)), constant_values=PAD_VALUE)


def _image_pixels(images: ArrayLike, levels: int) -> np.ndarray:
    """Validated images as ``uint8`` RGB ``(N, H, W, 3)`` on the 0..255 scale."""
    check_integer(levels, "levels", 2)
    tensor = images.detach().cpu() if isinstance(images, Tensor) else torch.as_tensor(np.asarray(images))
    if tensor.dim() != 4 or tensor.shape[0] == 0 or tensor.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, C, H, W) with N >= 1 and C = 1 (grey) or 3 (RGB), "
                         f"got {tuple(tensor.shape)}")
    tensor = check_data(tensor.double(), tuple(tensor.shape[1:]), levels, name="images")
    scaled = torch.round(to_8bit_scale(tensor, levels)).to(torch.uint8)
    return scaled.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()


def save_image_grid(images: ArrayLike, levels: int, path: str | Path, nrow: int | None = None,
                    title: str | None = None) -> Path:
    """Write :func:`image_grid` of ``images`` as a PNG (6 inches wide, pixels drawn as crisp squares)."""
    return _save(_grid_figure(image_grid(images, levels, nrow), title), path)


def _grid_figure(grid: np.ndarray, title: str | None) -> Figure:
    height, width, _ = grid.shape
    figure = Figure(figsize=(6, 6 * height / width + (0.5 if title else 0)), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(grid, interpolation="nearest")
    axes.set_axis_off()
    _title(axes, title)
    return figure


def image_pairs(left: ArrayLike, right: ArrayLike, levels: int, path: str | Path, pairs_per_row: int = 4,
                title: str | None = None) -> Path:
    """Images ``left[i]`` and ``right[i]`` ``(N, C, H, W)`` side by side, ``pairs_per_row`` pairs a row (homework 2's
    reconstruction pairs: a test image, then its reconstruction)."""
    return _save(_grid_figure(_pairs_grid(left, right, levels, pairs_per_row), title), path)


def _pairs_grid(left: ArrayLike, right: ArrayLike, levels: int, pairs_per_row: int) -> np.ndarray:
    left, right = _image_pixels(left, levels), _image_pixels(right, levels)
    if left.shape != right.shape:
        raise ValueError(f"the two sides of image pairs must have one shape, got {left.shape[:3]} and "
                         f"{right.shape[:3]} (N, H, W)")
    check_integer(pairs_per_row, "pairs_per_row", 1)
    interleaved = np.stack([left, right], axis=1).reshape(-1, *left.shape[1:])  # left 0, right 0, left 1, ...
    return image_grid(interleaved.transpose(0, 3, 1, 2), 256, nrow=2 * pairs_per_row)


def receptive_field(weights: ArrayLike, pixel: tuple[int, int], path: str | Path, title: str | None = None) -> Path:
    """Homework 1's receptive-field plot: the weighted map (``weights``, gradient magnitudes ``(H, W)``, scaled to
    [0, 1]) beside the binary map (``weights > 1e-8``), with the output ``pixel`` ``(row, column)`` in red."""
    return _save(_receptive_field_figure(weights, pixel, title), path)


def _receptive_field_figure(weights: ArrayLike, pixel: tuple[int, int], title: str | None = None) -> Figure:
    array = _as_array(weights, "weights")
    if array.ndim != 2 or array.min() < 0:
        raise ValueError(f"weights must be non-negative gradient magnitudes of shape (H, W), got shape {array.shape}")
    row, column = pixel
    if not (0 <= row < array.shape[0] and 0 <= column < array.shape[1]):
        raise ValueError(f"pixel {pixel} lies outside the map of shape {array.shape}")
    figure = Figure(figsize=(8, 4.4), dpi=DPI, layout="constrained")
    maps = {"weighted": array / array.max() if array.max() > 0 else array, "binary": (array > 1e-8).astype(float)}
    for axes, (kind, values) in zip(figure.subplots(1, 2), maps.items()):
        rgb = np.repeat(values[:, :, None], 3, axis=2)
        rgb[row, column] = (1.0, 0.0, 0.0)
        axes.imshow(rgb, interpolation="nearest", vmin=0, vmax=1)
        axes.set_axis_off()
        axes.set_title(f"{kind.capitalize()} receptive field" + (f"\nfor {title}" if title else ""))
    return figure


# -- 2D points and densities ------------------------------------------------------------------------------------------
def scatter_2d(points: ArrayLike, path: str | Path, labels: ArrayLike | None = None,
               reference: ArrayLike | None = None, title: str | None = None, bounds: Bounds | None = None) -> Path:
    """Scatter of 2D ``points`` ``(N, 2)`` (coloured by ``labels`` if given) over ``reference`` data in grey.

    ``bounds`` is ``((x_low, x_high), (y_low, y_high))``.
    """
    return _save(_scatter_figure(points, labels, reference, title, bounds), path)


def _scatter_figure(points: ArrayLike, labels: ArrayLike | None = None, reference: ArrayLike | None = None,
                    title: str | None = None, bounds: Bounds | None = None) -> Figure:
    points = _points(points, "points")
    figure = Figure(figsize=(5, 5), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    legend: list[tuple[Line2D, str]] = []
    if reference is not None:
        data = _points(reference, "reference")
        axes.scatter(data[:, 0], data[:, 1], s=1, c="lightgrey")
        legend.append((Line2D([], [], marker="o", linestyle="", color="lightgrey"), "data"))
    if labels is None:
        axes.scatter(points[:, 0], points[:, 1], s=1, c="C0")
        legend.append((Line2D([], [], marker="o", linestyle="", color="C0"), "samples"))
    else:
        dots = axes.scatter(points[:, 0], points[:, 1], s=1, c=_labels(labels, len(points)), cmap="tab10")
        legend += zip(*dots.legend_elements(num=None))
    if len(legend) > 1:
        axes.legend(*zip(*legend))
    if bounds is not None:
        (x_low, x_high), (y_low, y_high) = _bounds(bounds)
        axes.set_xlim(x_low, x_high)
        axes.set_ylim(y_low, y_high)
    _title(axes, title)
    return figure


@dataclass(frozen=True)
class GridDensity:
    """A density at the centres of a ``resolution × resolution`` grid of equal cells covering a box.

    ``density[i, j] = p(x[j], y[i])`` (rows follow y, as an image drawn with its origin at the bottom).
    """

    x: np.ndarray
    y: np.ndarray
    density: np.ndarray
    cell_area: float

    @property
    def integral(self) -> float:
        """Midpoint rule ``Σ p · Δx Δy``: about 1 for a normalised density whose mass lies in the box."""
        return float(self.density.sum() * self.cell_area)


def evaluate_density(log_prob_fn: Callable[[Tensor], Tensor], bounds: Bounds, resolution: int = 200,
                     batch_size: int = 65536) -> GridDensity:
    """``exp(log_prob_fn)`` at the cell centres of a grid over ``bounds``, evaluated in batches of points.

    ``log_prob_fn`` takes a CPU ``float32`` tensor ``(B, 2)`` and returns log-densities ``(B,)`` (move the points
    to the model's device inside it if needed); it runs without gradients.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    x, y, points = _grid(bounds, resolution)
    with torch.no_grad():
        log_density = torch.cat([_checked_log_prob(log_prob_fn, batch) for batch in points.split(batch_size)])
    density = np.exp(log_density.double().numpy()).reshape(resolution, resolution)
    cell_area = (x[-1] - x[0]) * (y[-1] - y[0]) / (resolution - 1)**2
    return GridDensity(x=x, y=y, density=density, cell_area=cell_area)


def _grid(bounds: Bounds, resolution: int) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """The cell centres ``x`` and ``y`` of a ``resolution``-square grid over ``bounds``, and all its points as a
    ``float32`` tensor ``(resolution², 2)``, row by row."""
    (x_low, x_high), (y_low, y_high) = _bounds(bounds)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2 (cells per axis), got {resolution!r}")
    x = x_low + (np.arange(resolution) + 0.5) * (x_high - x_low) / resolution
    y = y_low + (np.arange(resolution) + 0.5) * (y_high - y_low) / resolution
    grid_x, grid_y = np.meshgrid(x, y)
    return x, y, torch.from_numpy(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)).float()


def critic_map(critic_fn: Callable[[Tensor], Tensor], bounds: Bounds, path: str | Path, real: ArrayLike,
               fake: ArrayLike, resolution: int = 300, title: str | None = None) -> Path:
    """Homework 5's picture of a GAN: the critic's output over ``bounds`` as filled contours (25 levels), real
    points in blue and generated points in red on top. ``critic_fn`` maps a CPU ``float32`` tensor ``(B, 2)`` to
    ``(B,)`` values; it runs without gradients."""
    x, y, points = _grid(bounds, resolution)
    with torch.no_grad():
        values = torch.cat([critic_fn(batch).detach().cpu() for batch in points.split(65536)])
    figure = Figure(figsize=(6.5, 5), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    contours = axes.contourf(x, y, values.reshape(resolution, resolution).numpy(), levels=25, cmap="cividis")
    figure.colorbar(contours, ax=axes, label="critic output")
    for name, cloud, colour in (("real", real, "tab:blue"), ("generated", fake, "tab:red")):
        cloud = _points(cloud, name)
        axes.scatter(cloud[:, 0], cloud[:, 1], s=2, c=colour, alpha=0.6, label=name)
    axes.set_xlim(x[0], x[-1])
    axes.set_ylim(y[0], y[-1])
    axes.legend(loc="upper right", markerscale=4)
    _title(axes, title)
    return _save(figure, path)


def _checked_log_prob(log_prob_fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    log_density = log_prob_fn(points)
    if not isinstance(log_density, Tensor) or tuple(log_density.shape) != (len(points),):
        shape = tuple(log_density.shape) if isinstance(log_density, Tensor) else type(log_density).__name__
        raise ValueError(f"log_prob_fn must return a tensor of shape ({len(points)},) for points of shape "
                         f"{tuple(points.shape)}, got {shape}")
    if torch.isnan(log_density).any() or (log_density == math.inf).any():
        raise ValueError("log_prob_fn returned NaN or +inf log-densities")
    return log_density.detach().cpu()


def density_2d(log_prob_fn: Callable[[Tensor], Tensor], bounds: Bounds, path: str | Path, resolution: int = 200,
               samples: ArrayLike | None = None, title: str | None = None,
               reference: Callable[[Tensor], Tensor] | None = None) -> tuple[Path, float]:
    """Heat map of ``exp(log_prob_fn)`` over ``bounds`` (see :func:`evaluate_density`), ``samples`` on top; with
    ``reference`` (a log-density function, e.g. the target of a reverse-KL fit) its heat map is drawn on the left,
    on the same colour scale.

    Returns the PNG's path and the grid integral of the density (≈ 1 checks normalisation).
    """
    grid = evaluate_density(log_prob_fn, bounds, resolution)
    reference_grid = None if reference is None else evaluate_density(reference, bounds, resolution)
    return _save(_density_figure(grid, samples, title, reference_grid), path), grid.integral


def _density_figure(grid: GridDensity, samples: ArrayLike | None = None, title: str | None = None,
                    reference: GridDensity | None = None) -> Figure:
    panels = [("model", grid)] if reference is None else [("target", reference), ("model", grid)]
    largest = max(panel.density.max() for _, panel in panels)
    figure = Figure(figsize=(5 * len(panels) + 1, 5), dpi=DPI, layout="constrained")
    for axes, (name, panel) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        half_x, half_y = (panel.x[1] - panel.x[0]) / 2, (panel.y[1] - panel.y[0]) / 2
        extent = (panel.x[0] - half_x, panel.x[-1] + half_x, panel.y[0] - half_y, panel.y[-1] + half_y)
        image = axes.imshow(panel.density, origin="lower", extent=extent, aspect="auto", cmap="viridis",
                            vmin=0.0, vmax=largest)
        if reference is not None:
            axes.set_title(f"{name} (grid integral {panel.integral:.4f})")
        if samples is not None and panel is grid:
            points = _points(samples, "samples")
            axes.scatter(points[:, 0], points[:, 1], s=1, c="white", alpha=0.5)
            axes.set_xlim(extent[0], extent[1])
            axes.set_ylim(extent[2], extent[3])
    figure.colorbar(image, ax=figure.axes, label=f"density (grid integral {grid.integral:.4f})")
    if title and reference is not None:
        figure.suptitle(title)
    else:
        _title(figure.axes[0], title)
    return figure


def scatter_panels(panels: dict[str, ArrayLike], path: str | Path, reference: ArrayLike | None = None,
                   title: str | None = None) -> Path:
    """One scatter of 2D points ``(N, 2)`` per entry of ``panels`` (its title: the key), side by side on the same
    axes, each over ``reference`` data in grey (homework 2's samples with and without decoder noise)."""
    return _save(_panels_figure(panels, reference, title), path)


def _panels_figure(panels: dict[str, ArrayLike], reference: ArrayLike | None = None,
                   title: str | None = None) -> Figure:
    if not panels:
        raise ValueError("scatter_panels needs at least one panel of points")
    points = {name: _points(values, f"panels[{name!r}]") for name, values in panels.items()}
    data = None if reference is None else _points(reference, "reference")
    figure = Figure(figsize=(4.5 * len(points), 4.8), dpi=DPI, layout="constrained")
    grid = figure.subplots(1, len(points), squeeze=False, sharex=True, sharey=True)[0]
    for axes, (name, values) in zip(grid, points.items()):
        if data is not None:
            axes.scatter(data[:, 0], data[:, 1], s=1, c="lightgrey", label="data")
        axes.scatter(values[:, 0], values[:, 1], s=1, c="C0", label="samples")
        axes.set_title(name)
    if data is not None:
        grid[0].legend(markerscale=5)
    if title:
        figure.suptitle(title)
    return figure


def reconstructions_2d(points: ArrayLike, reconstructions: ArrayLike, path: str | Path,
                       title: str | None = None) -> Path:
    """2D data ``points`` ``(N, 2)`` and their ``reconstructions`` (a VAE's decoder mean at the posterior mean),
    each pair joined by a grey segment: a collapsed latent draws every point to one place."""
    return _save(_reconstructions_2d_figure(points, reconstructions, title), path)


def _reconstructions_2d_figure(points: ArrayLike, reconstructions: ArrayLike, title: str | None = None) -> Figure:
    data, decoded = _points(points, "points"), _points(reconstructions, "reconstructions")
    if data.shape != decoded.shape:
        raise ValueError(f"points and reconstructions must pair up, got shapes {data.shape} and {decoded.shape}")
    figure = Figure(figsize=(5, 5), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.add_collection(LineCollection(np.stack([data, decoded], axis=1), colors="lightgrey", linewidths=0.5))
    axes.scatter(data[:, 0], data[:, 1], s=2, c="C0", label="data")
    axes.scatter(decoded[:, 0], decoded[:, 1], s=2, c="C3", label="reconstruction")
    axes.legend(markerscale=4)
    _title(axes, title)
    return figure


def latent_scatter(z: ArrayLike, path: str | Path, labels: ArrayLike | None = None, title: str | None = None) -> Path:
    """2D latent codes ``z`` ``(N, 2)`` (a flow's latents, a VAE's posterior means) with the circles
    ``|z| = 1, 2, 3`` of the ``N(0, I)`` base or prior."""
    return _save(_latent_figure(z, labels, title), path)


def _latent_figure(z: ArrayLike, labels: ArrayLike | None = None, title: str | None = None) -> Figure:
    figure = _scatter_figure(z, labels=labels, title=title)
    axes = figure.axes[0]
    for radius in (1, 2, 3):
        axes.add_patch(Circle((0, 0), radius, fill=False, linestyle="--", color="grey"))
    axes.set_aspect("equal")
    axes.set_xlabel("$z_1$ (circles: |z| = 1, 2, 3 of N(0, I))")
    axes.set_ylabel("$z_2$")
    return figure


def flow_trajectory(points: Sequence[ArrayLike], path: str | Path, labels: ArrayLike | None = None,
                    title: str | None = None, max_panels: int = 8) -> Path:
    """The flow of 2D points through a flow, one panel per step: ``points[k]`` ``(N, 2)`` are the points after
    ``k`` layers (or at the ``k``-th time of an ODE). Points keep their colour from panel to panel: by ``labels`` if
    given, else by the angle of their starting position around the starting points' mean. At most ``max_panels``
    panels, evenly spaced from the first step to the last."""
    return _save(_trajectory_figure(points, labels, title, max_panels), path)


def _trajectory_figure(points: Sequence[ArrayLike], labels: ArrayLike | None = None, title: str | None = None,
                       max_panels: int = 8) -> Figure:
    steps = [_points(step, f"points[{k}]") for k, step in enumerate(points)]
    if len(steps) < 2 or len({len(step) for step in steps}) != 1:
        raise ValueError("points must hold at least two steps (start and end) with the same number of points each")
    check_integer(max_panels, "max_panels", 2)
    shown = np.unique(np.linspace(0, len(steps) - 1, min(max_panels, len(steps))).round().astype(int))
    if labels is None:
        colours, colour_map = _angles(steps[0]), "hsv"
    else:
        colours, colour_map = _labels(labels, len(steps[0])), "tab10"
    columns = min(4, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure = Figure(figsize=(3.2 * columns, 3.2 * rows + (0.4 if title else 0)), dpi=DPI, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, k in zip(grid, shown):
        axes.scatter(steps[k][:, 0], steps[k][:, 1], s=1, c=colours, cmap=colour_map)
        axes.set_title(f"step {k}/{len(steps) - 1}")
        axes.set_aspect("equal", adjustable="datalim")
    for unused in grid[len(shown):]:
        unused.remove()
    if title:
        figure.suptitle(title)
    return figure


# -- diffusion --------------------------------------------------------------------------------------------------------
States = Sequence[tuple[float, ArrayLike]]  # the states (t, x_t) of a diffusion process


def diffusion_2d(forward: States, reverse: States, bounds: Bounds, path: str | Path,
                 reference: ArrayLike | None = None, title: str | None = None) -> Path:
    """A diffusion model on 2D points, one panel per time, every panel on ``bounds``: the top row ``forward``
    (pairs ``(t, points (N, 2))``: test points noised to time ``t``), the bottom row ``reverse`` (the states of a
    sampler's path at about the same times). Both rows run from ``t = 0`` on the left to ``t = 1``, so each column
    sets the sampler's marginal under the forward process's one at one time. Within a row the points keep their
    order and their colour, set by where they are at the row's smallest time (the data end): the angle around their
    mean there. ``reference`` (the data) is drawn faint under every panel; a panel notes the share of its points
    that lie outside ``bounds``."""
    return _save(_diffusion_2d_figure(forward, reverse, bounds, reference, title), path)


def _diffusion_2d_figure(forward: States, reverse: States, bounds: Bounds, reference: ArrayLike | None = None,
                         title: str | None = None) -> Figure:
    rows = {"forward →\ntest points noised": _states(forward, "forward", _points),
            "← reverse\nthe sampler's path": _states(reverse, "reverse", _points)}
    (x_low, x_high), (y_low, y_high) = _bounds(bounds)
    data = None if reference is None else _points(reference, "reference")
    columns = max(len(states) for states in rows.values())
    panel = (2.6, 2.6 * min(max((y_high - y_low) / (x_high - x_low), 0.5), 1.5))  # inches, the data's aspect
    figure = Figure(figsize=(panel[0] * columns + 0.4, 2 * panel[1] + 0.6 + (0.3 if title else 0)), dpi=DPI,
                    layout="constrained")
    grid = figure.subplots(2, columns, squeeze=False)
    for axes_row, (name, states) in zip(grid, rows.items()):
        colours = _angles(min(states, key=lambda state: state[0])[1])
        for axes, (t, points) in zip(axes_row, states):
            if data is not None:
                axes.scatter(data[:, 0], data[:, 1], s=1, c="0.88", rasterized=True)
            axes.scatter(points[:, 0], points[:, 1], s=1, c=colours, cmap="hsv", vmin=-math.pi, vmax=math.pi)
            axes.set_title(f"t = {t:.3g}")
            axes.set_xlim(x_low, x_high)
            axes.set_ylim(y_low, y_high)
            axes.set_aspect("equal")
            axes.tick_params(labelsize=7)
            outside = np.mean((points[:, 0] < x_low) | (points[:, 0] > x_high)
                              | (points[:, 1] < y_low) | (points[:, 1] > y_high))
            if outside >= 0.005:
                axes.text(0.03, 0.03, f"{outside:.0%} outside", transform=axes.transAxes, fontsize=7,
                          bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
        axes_row[0].set_ylabel(name)
        for unused in axes_row[len(states):]:
            unused.remove()
    if title:
        figure.suptitle(title)
    return figure


def score_field(score_fn: Callable[[Tensor, float], Tensor], bounds: Bounds, path: str | Path,
                times: Sequence[float] = (0.05, 0.2, 0.6), resolution: int = 25, reference: ArrayLike | None = None,
                title: str | None = None) -> Path:
    """A diffusion model's score ``∇ log p_t`` as arrows on a ``resolution``-square grid over ``bounds``, one panel
    per time in ``times``, over ``reference`` data drawn faint. ``score_fn(points, t)`` maps a CPU ``float32``
    tensor ``(B, 2)`` and a time to the score at those points ``(B, 2)``; it runs without gradients. The score's
    size varies by orders of magnitude (it grows as ``1/σ(t)`` near the data and with the distance from it), so
    every arrow has the same length and shows the score's direction, and its colour tells ``|s|`` on a log scale
    shared by the panels."""
    if not times:
        raise ValueError("score_field needs at least one time")
    x, y, points = _grid(bounds, resolution)
    fields = {}
    with torch.no_grad():
        for t in times:
            field = _as_array(score_fn(points, float(t)), f"the score at t = {t}")
            if field.shape != tuple(points.shape):
                raise ValueError(f"score_fn must return the score at each point, shape {tuple(points.shape)}, "
                                 f"got {field.shape}")
            fields[float(t)] = field.reshape(resolution, resolution, 2)
    return _save(_score_field_figure(x, y, fields, reference, title), path)


def _score_field_figure(x: np.ndarray, y: np.ndarray, fields: dict[float, np.ndarray],
                        reference: ArrayLike | None = None, title: str | None = None) -> Figure:
    """``fields[t][i, j]`` is the score at ``(x[j], y[i])`` (rows follow y, as :func:`_grid` orders its points)."""
    half_x, half_y = (x[1] - x[0]) / 2, (y[1] - y[0]) / 2
    extent = (x[0] - half_x, x[-1] + half_x, y[0] - half_y, y[-1] + half_y)
    data = None if reference is None else _points(reference, "reference")
    magnitudes = {t: np.log10(np.maximum(np.linalg.norm(field, axis=-1), 1e-12)) for t, field in fields.items()}
    low, high = min(m.min() for m in magnitudes.values()), max(m.max() for m in magnitudes.values())
    height = 4.2 * min(max((extent[3] - extent[2]) / (extent[1] - extent[0]), 0.5), 1.5)
    figure = Figure(figsize=(4.2 * len(fields) + 1.0, height + 0.9), dpi=DPI, layout="constrained")
    grid = figure.subplots(1, len(fields), squeeze=False)[0]
    for axes, (t, field) in zip(grid, fields.items()):
        if data is not None:
            axes.scatter(data[:, 0], data[:, 1], s=1, c="0.82", rasterized=True)
        u, v = _directions(field, 0.8 * min(2 * half_x, 2 * half_y))
        arrows = axes.quiver(x, y, u, v, magnitudes[t], angles="xy", scale_units="xy", scale=1, pivot="middle",
                             cmap="viridis", clim=(low, high), width=0.004, headwidth=3.5, headlength=4,
                             headaxislength=3.5)
        axes.set_xlim(extent[0], extent[1])
        axes.set_ylim(extent[2], extent[3])
        axes.set_aspect("equal")
        axes.set_title(f"t = {t:.3g}")
    figure.colorbar(arrows, ax=list(grid), shrink=0.85, label="log10 |score|")
    figure.suptitle((f"{title}\n" if title else "") + "the score ∇log p_t: arrows show its direction "
                    "(all one length), colours its size", fontsize=10)
    return figure


def _directions(field: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """The components ``(u, v)`` of arrows ``length`` long along the vectors ``field (..., 2)`` (none for a zero
    vector)."""
    magnitude = np.linalg.norm(field, axis=-1)
    scale = np.divide(length, magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
    return field[..., 0] * scale, field[..., 1] * scale


def diffusion_images(forward: States, reverse: States, levels: int, path: str | Path,
                     title: str | None = None) -> Path:
    """A diffusion model on images: in the top panel one test image a row, noised to the time of each column
    (``forward``: pairs ``(t, images (k, C, H, W))`` holding integers ``0..levels-1``), in the bottom panel one
    sampler path a row (``reverse``, the same way), each column labelled with its time; columns keep the given
    order (the forward process from ``t = 0``, the reverse one from ``t = 1``)."""
    return _save(_diffusion_images_figure(forward, reverse, levels, title), path)


def _diffusion_images_figure(forward: States, reverse: States, levels: int, title: str | None = None) -> Figure:
    def pixels(images: ArrayLike, name: str) -> np.ndarray:
        return _image_pixels(images, levels)

    panels = {"forward: test images noised to time t": _states(forward, "forward", pixels, sort=False),
              "reverse: the sampler's paths from noise to samples": _states(reverse, "reverse", pixels, sort=False)}
    grids = {}
    for name, states in panels.items():
        cells = np.stack([images for _, images in states], axis=1)  # (rows, columns, H, W, 3)
        grids[name] = ([t for t, _ in states], cells.shape[3],
                       image_grid(cells.reshape(-1, *cells.shape[2:]).transpose(0, 3, 1, 2), 256, nrow=len(states)))
    width = max(grid.shape[1] for _, _, grid in grids.values())
    heights = [grid.shape[0] for _, _, grid in grids.values()]
    figure = Figure(figsize=(7, 7 * sum(heights) / width + 1.0 + (0.3 if title else 0)), dpi=DPI,
                    layout="constrained")
    for axes, (name, (times, cell_width, grid)) in zip(figure.subplots(2, 1, height_ratios=heights), grids.items()):
        axes.imshow(grid, interpolation="nearest")
        axes.set_xticks([1 + column * (cell_width + 1) + (cell_width - 1) / 2 for column in range(len(times))],
                        [f"t = {t:.2g}" for t in times], fontsize=8)
        axes.set_yticks([])
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        axes.set_title(name, fontsize=10)
    if title:
        figure.suptitle(title)
    return figure


def _states(states: States, name: str, convert: Callable[[ArrayLike, str], np.ndarray],
            sort: bool = True) -> list[tuple[float, np.ndarray]]:
    """``states`` as ``(t, convert(x_t))`` pairs of one shape (in increasing ``t`` if ``sort``)."""
    pairs = [(float(t), convert(x, f"{name} at t = {t}")) for t, x in states]
    if not pairs or len({x.shape for _, x in pairs}) != 1:
        raise ValueError(f"{name} must hold at least one state (t, x_t), all of one shape")
    return sorted(pairs, key=lambda pair: pair[0]) if sort else pairs


def _angles(points: np.ndarray) -> np.ndarray:
    """The angle of each point around the points' mean, in ``[-π, π]``: a colour that follows a point around."""
    centred = points - points.mean(axis=0)
    return np.arctan2(centred[:, 1], centred[:, 0])


# -- discrete distributions -------------------------------------------------------------------------------------------
def histogram_1d(values: ArrayLike, levels: int, path: str | Path, probabilities: ArrayLike | None = None,
                 reference_probabilities: ArrayLike | None = None, title: str | None = None) -> Path:
    """Frequencies of discrete ``values`` in ``0..levels-1`` as bars, with learned and true probabilities as steps."""
    return _save(_histogram_figure(values, levels, probabilities, reference_probabilities, title), path)


def _histogram_figure(values: ArrayLike, levels: int, probabilities: ArrayLike | None = None,
                      reference_probabilities: ArrayLike | None = None, title: str | None = None) -> Figure:
    check_integer(levels, "levels", 2)
    values = _as_array(values, "values")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"values must have shape (N,) or (N, 1), got {values.shape}")
    check_data(torch.from_numpy(values)[:, None], (1,), levels, name="values")
    frequencies = np.bincount(values.astype(np.int64), minlength=levels) / len(values)
    figure = Figure(figsize=(8, 4), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    outcomes = np.arange(levels)
    axes.bar(outcomes, frequencies, width=1.0, alpha=0.5, color="C0", label="frequency")
    for table, name, label, colour in ((reference_probabilities, "reference_probabilities", "true", "black"),
                                       (probabilities, "probabilities", "learned", "C3")):
        if table is not None:
            axes.step(outcomes, _probability_table(table, (levels,), name), where="mid", color=colour, label=label)
    axes.set_xlabel("value")
    axes.set_ylabel("probability")
    axes.legend()
    _title(axes, title)
    return figure


def heatmap_2d_discrete(probabilities: ArrayLike, path: str | Path, title: str | None = None,
                        reference: ArrayLike | None = None) -> Path:
    """A discrete 2D distribution ``(H, W)`` as an image; with ``reference``, true and learned side by side."""
    return _save(_heatmap_figure(probabilities, title, reference), path)


def _heatmap_figure(probabilities: ArrayLike, title: str | None = None, reference: ArrayLike | None = None) -> Figure:
    learned = _probability_table(probabilities, None, "probabilities")
    if learned.ndim != 2:
        raise ValueError(f"probabilities must be a table of shape (H, W), got shape {learned.shape}")
    panels = [("learned", learned)]
    if reference is not None:
        panels.insert(0, ("true", _probability_table(reference, learned.shape, "reference")))
    largest = max(table.max() for _, table in panels)
    figure = Figure(figsize=(4.5 * len(panels) + 1, 4.5), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for panel, (name, table) in zip(axes, panels):
        image = panel.imshow(table, cmap="viridis", vmin=0.0, vmax=largest, interpolation="nearest")
        panel.set_title(name)
    figure.colorbar(image, ax=list(axes), label="probability")
    if title:
        figure.suptitle(title)
    return figure


def _probability_table(table: ArrayLike, shape: tuple[int, ...] | None, name: str) -> np.ndarray:
    """``table`` as an array of the given shape holding non-negative numbers that sum to 1 (within 1e-3)."""
    array = _as_array(table, name)
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if (array < 0).any() or abs(array.sum() - 1) > 1e-3:
        raise ValueError(f"{name} must be probabilities (non-negative, summing to 1), "
                         f"got minimum {array.min():g} and sum {array.sum():g}")
    return array


# -- sequences --------------------------------------------------------------------------------------------------------
def sequences(samples: ArrayLike, path: str | Path, reference: ArrayLike | None = None, count: int = 4,
              title: str | None = None) -> Path:
    """The first ``count`` sequences ``(N, T)`` or ``(N, 1, T)`` as lines, one panel each: ``samples`` in the right
    column and, if given, ``reference`` sequences (the data) in the left one (WaveNet's real versus sampled
    waveforms)."""
    return _save(_sequences_figure(samples, reference, count, title), path)


def _sequences_figure(samples: ArrayLike, reference: ArrayLike | None = None, count: int = 4,
                      title: str | None = None) -> Figure:
    check_integer(count, "count", 1)
    columns = [("data", _sequence_rows(reference, "reference", count))] if reference is not None else []
    columns.append(("samples", _sequence_rows(samples, "samples", count)))
    rows = max(len(lines) for _, lines in columns)
    figure = Figure(figsize=(5 * len(columns), 1.4 * rows + 0.6), dpi=DPI, layout="constrained")
    grid = figure.subplots(rows, len(columns), sharex=True, sharey=True, squeeze=False)
    for column, (name, lines) in enumerate(columns):
        grid[0, column].set_title(name)
        for row, line in enumerate(lines):
            grid[row, column].plot(np.arange(len(line)), line, linewidth=0.8, color=f"C{column}")
        grid[-1, column].set_xlabel("step")
    if title:
        figure.suptitle(title)
    return figure


def _sequence_rows(values: ArrayLike, name: str, count: int) -> np.ndarray:
    array = _as_array(values, name)
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 2 or len(array) == 0:
        raise ValueError(f"{name} must have shape (N, T) or (N, 1, T) with N >= 1, got {array.shape}")
    return array[:count]


# -- training curves --------------------------------------------------------------------------------------------------
def read_metrics_csv(metrics_csv: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each logged column of a Lightning ``CSVLogger`` file → ``(steps, values)`` over the rows that hold it.

    The file has a ``step`` column and one column per logged name; a row leaves empty the names it did not log.
    The ``epoch`` column is bookkeeping, not a curve.
    """
    with open(metrics_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows or "step" not in rows[0]:
        raise ValueError(f"{metrics_csv} must be a CSVLogger metrics.csv with a 'step' column and at least one row")
    curves = {}
    for column in rows[0]:
        if column in ("step", "epoch"):
            continue
        logged = [(row["step"], row[column]) for row in rows if row[column] not in ("", None)]
        if logged:
            curves[column] = tuple(_numbers(series, column, metrics_csv) for series in zip(*logged))
    if not curves:
        raise ValueError(f"{metrics_csv} holds no logged values")
    return curves


def _numbers(texts: Sequence[str], column: str, source: str | Path) -> np.ndarray:
    try:
        return np.array([float(text) for text in texts])
    except ValueError as error:
        raise ValueError(f"{source}: column {column!r} must hold numbers ({error})") from None


def training_curves(metrics_csv: str | Path | Sequence[str | Path], path: str | Path, logy: bool = False) -> Path:
    """Train and test curves against the step, one panel per logged quantity (``train/kl`` and ``test/kl`` share).

    Several files (the parts of a resumed run, in order) are joined into one curve per quantity.
    """
    files = [metrics_csv] if isinstance(metrics_csv, str | Path) else list(metrics_csv)
    if not files:
        raise ValueError("training_curves needs at least one metrics.csv")
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for file in files:
        for column, (steps, values) in read_metrics_csv(file).items():
            previous_steps, previous_values = curves.get(column, (np.empty(0), np.empty(0)))
            curves[column] = (np.concatenate([previous_steps, steps]), np.concatenate([previous_values, values]))
    return _save(_curves_figure(curves, logy), path)


def _curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], logy: bool = False) -> Figure:
    """One panel per quantity; a column ``split/quantity`` is drawn in the quantity's panel, labelled ``split``."""
    panels: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for column, (steps, values) in curves.items():
        split, _, quantity = column.partition("/") if "/" in column else (column, "", column)
        panels.setdefault(quantity, []).append((split, steps, values))
    for lines in panels.values():
        lines.sort(key=lambda line: SPLIT_ORDER.get(line[0], len(SPLIT_ORDER)))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows), dpi=DPI, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, (quantity, lines) in zip(grid, panels.items()):
        for split, steps, values in lines:
            style = {} if split == "train" else {"marker": "o", "markersize": 3}
            axes.plot(steps, values, label=split, **style)
        if logy:
            _log_scale(axes, quantity, lines)
        axes.set_xlabel("step")
        axes.set_ylabel(quantity)
        axes.grid(True, alpha=0.3)
        axes.legend()
    for unused in grid[len(panels):]:
        unused.remove()
    return figure


def _log_scale(axes: Axes, quantity: str, lines: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    if any((values <= 0).any() for _, _, values in lines):
        raise ValueError(f"logy needs positive values, but {quantity!r} has values <= 0 (a continuous NLL can be "
                         "negative); plot it with logy=False")
    axes.set_yscale("log")


def quality_against_steps(lines: dict[str, tuple[Sequence[int], Sequence[float]]], path: str | Path,
                          quantity: str = "FID", reference: float | None = None, title: str | None = None) -> Path:
    """A sample-quality measure against the number of sampling steps, one line per sampler (``name: (steps,
    values)``), the steps on a log scale, and ``reference`` (the floor of real data) as a dashed line."""
    if not lines:
        raise ValueError("quality_against_steps needs at least one sampler's line")
    figure = Figure(figsize=(5.5, 4), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    for name, (steps, values) in lines.items():
        axes.plot(_as_array(steps, f"the steps of {name}"), _as_array(values, f"the values of {name}"), marker="o",
                  label=name)
    if reference is not None:
        axes.axhline(reference, color="grey", linestyle="--", label="real data")
    axes.set_xscale("log")
    axes.set_xlabel("sampling steps (network evaluations)")
    axes.set_ylabel(quantity)
    axes.grid(True, alpha=0.3)
    axes.legend()
    _title(axes, title)
    return _save(figure, path)


# -- shared helpers ---------------------------------------------------------------------------------------------------
def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG: the path must end in .png, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _title(axes: Axes, title: str | None) -> None:
    if title:
        axes.set_title(title)


def _as_array(values: ArrayLike, name: str) -> np.ndarray:
    """A finite float64 array from a tensor, an array or a nested sequence."""
    array = values.detach().cpu().double().numpy() if isinstance(values, Tensor) else np.asarray(values, float)
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be non-empty and finite")
    return array


def _points(points: ArrayLike, name: str) -> np.ndarray:
    array = _as_array(points, name)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) (2D points), got {array.shape}")
    return array


def _labels(labels: ArrayLike, count: int) -> np.ndarray:
    array = _as_array(labels, "labels")
    if array.shape != (count,):
        raise ValueError(f"labels must have shape ({count},), one per point, got {array.shape}")
    return array


def _bounds(bounds: Bounds) -> Bounds:
    try:
        (x_low, x_high), (y_low, y_high) = bounds
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be ((x_low, x_high), (y_low, y_high)), got {bounds!r}") from None
    if not (x_low < x_high and y_low < y_high):
        raise ValueError(f"bounds must have x_low < x_high and y_low < y_high, got {bounds!r}")
    return (float(x_low), float(x_high)), (float(y_low), float(y_high))
