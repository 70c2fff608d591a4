"""Tests of dgm.plots: grid pixels, density normalisation and placement, curve data, PNG files."""
import math
import struct

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from matplotlib.patches import Circle

from dgm import plots

GREY = plots.PAD_VALUE


def png_size(path):
    """(width, height) from the PNG signature and IHDR chunk; fails on anything that is not a PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def standard_normal_log_prob(points):
    return -0.5 * (points**2).sum(dim=1) - math.log(2 * math.pi)


# -- image_grid ---------------------------------------------------------------------------------------------------------
def test_image_grid_places_each_image_and_pads_with_grey():
    images = torch.tensor([[[[0, 1], [2, 3]]], [[[4, 4], [4, 4]]], [[[0, 0], [0, 4]]]], dtype=torch.float32)
    grid = plots.image_grid(images, levels=5, nrow=2, padding=1)
    assert grid.dtype == np.uint8 and grid.shape == (7, 7, 3)
    assert (grid == grid[..., :1]).all()  # greyscale: the three channels agree
    grey = grid[..., 0]
    # 255 k / 4 rounded: 0, 64, 128 (127.5 rounds to even), 191, 255
    np.testing.assert_array_equal(grey[1:3, 1:3], [[0, 64], [128, 191]])
    np.testing.assert_array_equal(grey[1:3, 4:6], [[255, 255], [255, 255]])
    np.testing.assert_array_equal(grey[4:6, 1:3], [[0, 0], [0, 255]])
    np.testing.assert_array_equal(grey[4:6, 4:6], GREY)  # the empty fourth slot
    separators = np.zeros((7, 7), dtype=bool)
    separators[[0, 3, 6], :] = separators[:, [0, 3, 6]] = True
    assert (grey[separators] == GREY).all()


def test_image_grid_rgb_keeps_channels_and_orientation():
    image = torch.zeros(1, 3, 1, 2)
    image[0, 0, 0, 0] = 2  # left pixel red
    image[0, 2, 0, 1] = 2  # right pixel blue
    grid = plots.image_grid(image, levels=3, padding=0)
    np.testing.assert_array_equal(grid, [[[255, 0, 0], [0, 0, 255]]])


def test_image_grid_scales_extremes_and_stacks_in_rows():
    images = np.array([np.zeros((1, 3, 3)), np.full((1, 3, 3), 255.0)])
    grid = plots.image_grid(images, levels=256, nrow=1, padding=0)
    assert grid.shape == (6, 3, 3)
    assert (grid[:3] == 0).all() and (grid[3:] == 255).all()
    binary = plots.image_grid(torch.ones(4, 1, 2, 2), levels=2, padding=2)
    assert binary.shape == (2 * 4 + 2, 2 * 4 + 2, 3)  # default nrow = ceil(sqrt(4)) = 2
    assert (binary[2:4, 2:4] == 255).all() and (binary[:2] == GREY).all() and (binary[-2:] == GREY).all()


@pytest.mark.parametrize("images, levels, match", [
    (torch.full((1, 1, 2, 2), 2.0), 2, "0..1"),
    (torch.full((1, 1, 2, 2), 0.5), 2, "integer"),
    (torch.zeros(1, 2, 2, 2), 2, r"\(N, C, H, W\)"),
    (torch.zeros(1, 2, 2), 2, r"\(N, C, H, W\)"),
    (torch.zeros(1, 1, 2, 2), 1, "levels"),
])
def test_image_grid_rejects_bad_images(images, levels, match):
    with pytest.raises(ValueError, match=match):
        plots.image_grid(images, levels)


def test_save_image_grid_writes_the_pixels(tmp_path):
    white = plots.save_image_grid(torch.ones(1, 1, 4, 4), 2, tmp_path / "white.png")
    black = plots.save_image_grid(torch.zeros(1, 1, 4, 4), 2, tmp_path / "black.png", title="zeros")
    assert png_size(white) == (600, 600)
    assert png_size(black) == (600, 650)  # half an inch more for the title
    np.testing.assert_allclose(imread(white)[300, 300, :3], 1.0)
    np.testing.assert_allclose(imread(black)[325, 300, :3], 0.0)
    with pytest.raises(ValueError, match=".png"):
        plots.save_image_grid(torch.ones(1, 1, 4, 4), 2, tmp_path / "grid.jpg")


# -- 2D densities and points --------------------------------------------------------------------------------------------
def test_density_of_standard_normal_integrates_to_one(tmp_path):
    path, integral = plots.density_2d(standard_normal_log_prob, ((-8, 8), (-8, 8)), tmp_path / "d.png")
    assert abs(integral - 1) < 1e-3
    assert png_size(path) == (600, 500)
    half = plots.evaluate_density(standard_normal_log_prob, ((0, 8), (-8, 8)), resolution=100)
    assert abs(half.integral - 0.5) < 1e-3  # cells start exactly at x = 0: half the mass


def test_density_values_follow_the_grid_orientation():
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])

    def log_prob(points):
        return torch.distributions.Normal(mean, std).log_prob(points).sum(dim=1)

    grid = plots.evaluate_density(log_prob, ((-1, 3), (-6, 2)), resolution=40)
    np.testing.assert_allclose(grid.x[[0, -1]], [-1 + 0.05, 3 - 0.05])  # cell centres, width 0.1
    np.testing.assert_allclose(grid.y[[0, -1]], [-6 + 0.1, 2 - 0.1])
    x, y = np.meshgrid(grid.x, grid.y)
    closed_form = np.exp(-0.5 * ((x - 1) / 0.5) ** 2 - 0.5 * (y + 2) ** 2) / (2 * math.pi * 0.5)
    np.testing.assert_allclose(grid.density, closed_form, rtol=1e-5)
    assert grid.cell_area == pytest.approx(0.1 * 0.2)


def test_density_is_evaluated_in_batches():
    batch_shapes = []

    def log_prob(points):
        batch_shapes.append(tuple(points.shape))
        return standard_normal_log_prob(points)

    plots.evaluate_density(log_prob, ((-1, 1), (-1, 1)), resolution=4, batch_size=7)
    assert batch_shapes == [(7, 2), (7, 2), (2, 2)]


def test_density_figure_shows_the_grid(tmp_path):
    grid = plots.evaluate_density(standard_normal_log_prob, ((-2, 2), (-3, 3)), resolution=10)
    figure = plots._density_figure(grid, samples=torch.zeros(5, 2))
    image = figure.axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), grid.density)
    np.testing.assert_allclose(image.get_extent(), (-2, 2, -3, 3))
    assert image.origin == "lower"  # row 0 of the density is the lowest y
    np.testing.assert_array_equal(figure.axes[0].collections[0].get_offsets(), np.zeros((5, 2)))


@pytest.mark.parametrize("log_prob, match", [
    (lambda points: standard_normal_log_prob(points)[:, None], "shape"),
    (lambda points: torch.full((len(points),), float("nan")), "NaN"),
])
def test_density_rejects_bad_log_prob(log_prob, match):
    with pytest.raises(ValueError, match=match):
        plots.evaluate_density(log_prob, ((-1, 1), (-1, 1)), resolution=4)


@pytest.mark.parametrize("bounds", [((1, -1), (0, 1)), (0, 1), ((0, 1), (2, 2))])
def test_density_rejects_bad_bounds(bounds):
    with pytest.raises(ValueError, match="bounds"):
        plots.evaluate_density(standard_normal_log_prob, bounds)


def test_scatter_draws_reference_under_points(tmp_path):
    points, reference = np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[5.0, 5.0]])
    figure = plots._scatter_figure(points, labels=[0, 1], reference=reference, bounds=((-1, 6), (-2, 7)))
    axes = figure.axes[0]
    np.testing.assert_array_equal(axes.collections[0].get_offsets(), reference)
    np.testing.assert_array_equal(axes.collections[1].get_offsets(), points)
    assert axes.get_xlim() == (-1, 6) and axes.get_ylim() == (-2, 7)
    assert [text.get_text() for text in axes.get_legend().get_texts()][0] == "data"
    assert png_size(plots.scatter_2d(points, tmp_path / "s.png")) == (500, 500)
    with pytest.raises(ValueError, match="labels"):
        plots.scatter_2d(points, tmp_path / "s.png", labels=[0, 1, 2])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.scatter_2d(np.zeros((3, 3)), tmp_path / "s.png")


def test_latent_scatter_draws_unit_gaussian_circles(tmp_path):
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    figure = plots._latent_figure(z, labels=torch.arange(20) % 2)
    axes = figure.axes[0]
    np.testing.assert_allclose(axes.collections[0].get_offsets(), z.numpy(), rtol=1e-6)
    assert sorted(patch.radius for patch in axes.patches if isinstance(patch, Circle)) == [1, 2, 3]
    assert png_size(plots.latent_scatter(z, tmp_path / "z.png")) == (500, 500)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.latent_scatter(torch.zeros(4, 3), tmp_path / "z.png")


def test_image_pairs_put_each_image_beside_its_partner(tmp_path):
    left = torch.stack([torch.full((1, 2, 2), float(k)) for k in range(3)])  # images of values 0, 1, 2
    right = 4 - left
    grid = plots._pairs_grid(left, right, levels=5, pairs_per_row=2)
    assert grid.shape == (2 * 3 + 1, 4 * 3 + 1, 3)  # 2 rows of 2 pairs, 2x2 images, padding 1
    grey = grid[..., 0]
    cells = [grey[1 + 3 * row:3 + 3 * row, 1 + 3 * column:3 + 3 * column] for row in range(2) for column in range(4)]
    expected = [0, 255, 64, 191, 128, 128]  # left 0, right 0, left 1, right 1, ... (value k: round(255 k / 4))
    for cell, value in zip(cells, expected):
        assert (cell == value).all()
    assert (cells[6] == GREY).all() and (cells[7] == GREY).all()
    assert png_size(plots.image_pairs(left, right, 5, tmp_path / "pairs.png"))[0] == 600
    with pytest.raises(ValueError, match="one shape"):
        plots.image_pairs(left, right[:2], 5, tmp_path / "pairs.png")


def test_scatter_panels_share_axes_and_reference(tmp_path):
    reference = np.array([[0.0, 0.0], [10.0, 10.0]])
    panels = {"with noise": np.array([[1.0, 2.0]]), "without noise": np.array([[3.0, 4.0], [5.0, 6.0]])}
    figure = plots._panels_figure(panels, reference, title="vae")
    assert [axes.get_title() for axes in figure.axes] == list(panels)
    for axes, points in zip(figure.axes, panels.values()):
        np.testing.assert_array_equal(axes.collections[0].get_offsets(), reference)
        np.testing.assert_array_equal(axes.collections[1].get_offsets(), points)
    assert figure.axes[0].get_xlim() == figure.axes[1].get_xlim()
    assert png_size(plots.scatter_panels(panels, tmp_path / "panels.png")) == (900, 480)
    with pytest.raises(ValueError, match="at least one panel"):
        plots.scatter_panels({}, tmp_path / "panels.png")


def test_reconstructions_2d_join_each_point_to_its_reconstruction(tmp_path):
    points, decoded = np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[0.5, 0.5], [1.0, 1.0]])
    figure = plots._reconstructions_2d_figure(points, decoded)
    segments, data, reconstructions = figure.axes[0].collections
    np.testing.assert_array_equal(np.stack(segments.get_segments()), np.stack([points, decoded], axis=1))
    np.testing.assert_array_equal(data.get_offsets(), points)
    np.testing.assert_array_equal(reconstructions.get_offsets(), decoded)
    assert png_size(plots.reconstructions_2d(points, decoded, tmp_path / "r.png")) == (500, 500)
    with pytest.raises(ValueError, match="pair up"):
        plots.reconstructions_2d(points, decoded[:1], tmp_path / "r.png")


# -- discrete distributions ---------------------------------------------------------------------------------------------
def test_histogram_bars_are_frequencies_and_lines_probabilities(tmp_path):
    learned, true = [0.4, 0.3, 0.1, 0.2], [0.5, 0.25, 0.0, 0.25]
    figure = plots._histogram_figure(torch.tensor([[0.0], [0.0], [1.0], [3.0]]), 4, learned, true)
    axes = figure.axes[0]
    np.testing.assert_allclose([bar.get_height() for bar in axes.patches], [0.5, 0.25, 0.0, 0.25])
    lines = {line.get_label(): line.get_ydata() for line in axes.lines}
    np.testing.assert_allclose(lines["learned"], learned)
    np.testing.assert_allclose(lines["true"], true)
    assert png_size(plots.histogram_1d([0, 1], 4, tmp_path / "h.png")) == (800, 400)


@pytest.mark.parametrize("values, probabilities, match", [
    ([0, 4], None, "0..3"),
    ([0, 1], [0.5, 0.5, 0.5, 0.5], "sum"),
    ([0, 1], [0.5, 0.5], r"shape \(4,\)"),
    (np.zeros((2, 2)), None, r"\(N,\)"),
])
def test_histogram_rejects_bad_input(tmp_path, values, probabilities, match):
    with pytest.raises(ValueError, match=match):
        plots.histogram_1d(values, 4, tmp_path / "h.png", probabilities=probabilities)


def test_heatmap_puts_true_beside_learned_on_one_scale(tmp_path):
    true = np.array([[0.1, 0.2], [0.3, 0.4]])
    learned = np.array([[0.25, 0.25], [0.25, 0.25]])
    figure = plots._heatmap_figure(learned, title="MADE", reference=true)
    panels = [axes for axes in figure.axes if axes.images]
    assert [axes.get_title() for axes in panels] == ["true", "learned"]
    np.testing.assert_array_equal(panels[0].images[0].get_array(), true)
    np.testing.assert_array_equal(panels[1].images[0].get_array(), learned)
    assert all(axes.images[0].get_clim() == (0.0, 0.4) for axes in panels)
    assert png_size(plots.heatmap_2d_discrete(learned, tmp_path / "m.png")) == (550, 450)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        plots.heatmap_2d_discrete(learned, tmp_path / "m.png", reference=np.full((3, 3), 1 / 9))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        plots.heatmap_2d_discrete(np.full(4, 0.25), tmp_path / "m.png")


# -- training curves ----------------------------------------------------------------------------------------------------
SPARSE_CSV = """epoch,step,test/loss,train/kl,train/loss
0,9,,0.5,2.0
0,19,,0.25,1.5
0,19,1.75,,
1,29,,0.125,1.25
1,39,1.0,,
"""


def test_read_metrics_csv_keeps_only_logged_rows(tmp_path):
    (tmp_path / "metrics.csv").write_text(SPARSE_CSV)
    curves = plots.read_metrics_csv(tmp_path / "metrics.csv")
    assert list(curves) == ["test/loss", "train/kl", "train/loss"]
    np.testing.assert_array_equal(curves["test/loss"][0], [19, 39])
    np.testing.assert_array_equal(curves["test/loss"][1], [1.75, 1.0])
    np.testing.assert_array_equal(curves["train/kl"][0], [9, 19, 29])
    np.testing.assert_array_equal(curves["train/loss"][1], [2.0, 1.5, 1.25])


def test_curves_figure_has_one_panel_per_quantity(tmp_path):
    (tmp_path / "metrics.csv").write_text(SPARSE_CSV)
    figure = plots._curves_figure(plots.read_metrics_csv(tmp_path / "metrics.csv"), logy=True)
    panels = {axes.get_ylabel(): axes for axes in figure.axes}
    assert set(panels) == {"loss", "kl"}
    loss_lines = {line.get_label(): line for line in panels["loss"].lines}
    assert list(loss_lines) == ["train", "test"]
    np.testing.assert_array_equal(loss_lines["train"].get_xdata(), [9, 19, 29])
    np.testing.assert_array_equal(loss_lines["test"].get_xdata(), [19, 39])
    np.testing.assert_array_equal(loss_lines["test"].get_ydata(), [1.75, 1.0])
    assert [len(line.get_xdata()) for line in panels["kl"].lines] == [3]
    assert panels["kl"].get_yscale() == "log"
    assert png_size(plots.training_curves(tmp_path / "metrics.csv", tmp_path / "c.png")) == (900, 350)


def test_curves_group_nested_names_and_wrap_panels(tmp_path):
    columns = ["train/generator/loss", "train/critic/loss", "test/loss", "test/critic_loss"]
    curves = {column: (np.array([1.0, 2.0]), np.array([-1.0, 1.0])) for column in columns}
    figure = plots._curves_figure(curves)
    assert [axes.get_ylabel() for axes in figure.axes] == ["generator/loss", "critic/loss", "loss", "critic_loss"]
    assert figure.get_size_inches() == pytest.approx((13.5, 7.0))  # 3 panels a row, the unused fifth removed
    with pytest.raises(ValueError, match="logy"):
        plots._curves_figure(curves, logy=True)


@pytest.mark.parametrize("text, match", [
    ("epoch,train/loss\n0,1.0\n", "step"),
    ("epoch,step,train/loss\n", "step"),
    ("epoch,step,train/loss\n0,1,\n", "no logged values"),
    ("epoch,step,train/loss\n0,1,abc\n", "train/loss"),
])
def test_read_metrics_csv_rejects_bad_files(tmp_path, text, match):
    (tmp_path / "metrics.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        plots.read_metrics_csv(tmp_path / "metrics.csv")


def test_quality_against_steps_draws_each_sampler_on_log_steps_with_the_floor(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure) or plots.Path(path))
    plots.quality_against_steps({"ddim": ([10, 50], [30.0, 12.0]), "dpm": ([10, 20], [15.0, 11.0])},
                                tmp_path / "f.png", reference=2.5)
    axes = figures[0].axes[0]
    lines = {line.get_label(): line.get_xydata().tolist() for line in axes.get_lines()}
    assert lines["ddim"] == [[10, 30.0], [50, 12.0]] and lines["dpm"] == [[10, 15.0], [20, 11.0]]
    assert lines["real data"][0][1] == 2.5 and axes.get_xscale() == "log"
    with pytest.raises(ValueError, match="at least one sampler"):
        plots.quality_against_steps({}, tmp_path / "g.png")
    with pytest.raises(ValueError, match="the values of ddim must be non-empty and finite"):
        plots.quality_against_steps({"ddim": ([10], [float("nan")])}, tmp_path / "g.png")
