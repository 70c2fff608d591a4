"""Tests of the pictures of diffusion models: diffusion.png (forward and reverse processes) and score_field.png,
their figure functions in dgm.plots, and their wiring into dgm.runs.write_pictures through the optional hooks."""
import math
import struct
import time

import numpy as np
import pytest
import torch

import dgm
from dgm import plots
from dgm.runs import DIFFUSION_EXAMPLES, DIFFUSION_TIMES, density_resolution, write_pictures


def png_size(path):
    """(width, height) from the PNG signature and IHDR chunk; fails on anything that is not a PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def written_names(paths):
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0 and min(png_size(path)) > 0
    return {path.name for path in paths}


def tiny_ddpm_2d():
    torch.manual_seed(0)
    return dgm.create("ddpm", shape=(2,), steps=20, hidden=[8])


def tiny_ddpm_images(levels):
    torch.manual_seed(0)
    return dgm.create("ddpm", shape=(1, 8, 8), levels=levels, steps=10, width=8, multipliers=[1],
                      blocks_per_level=1, attention_levels=[])


@pytest.fixture(scope="module")
def moons():
    return dgm.data.load("moons", n_train=256, n_test=2500)


@pytest.fixture(scope="module")
def digits():
    return dgm.data.load("digits")


@pytest.fixture
def figures(monkeypatch):
    """The figures that dgm.plots saves, by file name."""
    saved = {}
    save = plots._save

    def recording_save(figure, path):
        saved[plots.Path(path).name] = figure
        return save(figure, path)

    monkeypatch.setattr(plots, "_save", recording_save)
    return saved


def offsets(axes):
    """The points of the last scatter of a panel (the first one is the faint data underneath)."""
    return axes.collections[-1].get_offsets()


# -- wiring into write_pictures ---------------------------------------------------------------------------------------
def test_ddpm_on_2d_points_gets_diffusion_and_score_field(tmp_path, moons, figures):
    model = tiny_ddpm_2d()
    names = written_names(write_pictures(model, moons, tmp_path))
    assert {"samples.png", "diffusion.png", "score_field.png"} <= names
    top, bottom = np.reshape(figures["diffusion.png"].axes, (2, -1))
    times = [f"t = {t:g}" for t in DIFFUSION_TIMES["vector"]]
    assert [axes.get_title() for axes in top] == times
    assert [axes.get_title() for axes in bottom] == times  # the model's 20 DDIM steps hit every time exactly
    n = DIFFUSION_EXAMPLES["vector"]
    # noised to t = 0 is the data itself (α(0) = 1, σ(0) = 0): the top-left panel shows exactly the test points
    np.testing.assert_array_equal(offsets(top[0]), moons.test[:n].numpy())
    assert all(len(offsets(axes)) == n for axes in [*top, *bottom])
    bounds = ((-4.2, 4.2), (-2.4, 3.0))
    for axes in [*top, *bottom]:
        np.testing.assert_allclose((axes.get_xlim(), axes.get_ylim()), bounds, atol=1e-3)
    score_panels = [axes for axes in figures["score_field.png"].axes if axes.get_title()]
    assert [axes.get_title() for axes in score_panels] == ["t = 0.05", "t = 0.2", "t = 0.6"]


def test_reverse_row_follows_the_sample_options(tmp_path, moons, figures, monkeypatch):
    model = tiny_ddpm_2d()
    calls = []
    reverse_path = model.reverse_path

    def spy(n, **options):
        calls.append(options)
        walk = reverse_path(n, **options)
        calls.append(walk)
        return walk

    monkeypatch.setattr(model, "reverse_path", spy)
    write_pictures(model, moons, tmp_path, {"sampler": "ancestral", "steps": 4})
    options, walk = calls
    assert options == {"sampler": "ancestral", "steps": 4}
    assert [t for t, _ in walk] == pytest.approx([1, 0.75, 0.5, 0.25, 0])
    bottom = np.reshape(figures["diffusion.png"].axes, (2, -1))[1]
    # the states nearest the times 0, 0.1, 0.25, 0.5, 0.75, 1 of a 4-step walk
    assert [axes.get_title() for axes in bottom] == ["t = 0", "t = 0", "t = 0.25", "t = 0.5", "t = 0.75", "t = 1"]
    np.testing.assert_allclose(offsets(bottom[0]), walk[-1][1].numpy(), rtol=1e-6)  # the samples
    np.testing.assert_allclose(offsets(bottom[-1]), walk[0][1].numpy(), rtol=1e-6)  # the starting noise


def test_ncsn_on_2d_points_gets_diffusion_and_score_field(tmp_path, moons, monkeypatch):
    torch.manual_seed(0)
    model = dgm.create("ncsn", shape=(2,), hidden=[8], noise_levels=5)
    # density.png solves an ODE at each of its 40000 grid points for this model: tested elsewhere, skipped here
    monkeypatch.setattr(plots, "density_2d", lambda *args, **kwargs: (None, 1.0))
    paths = [path for path in write_pictures(model, moons, tmp_path, {"steps_per_level": 5}) if path is not None]
    assert {"diffusion.png", "score_field.png"} <= written_names(paths)


def test_ddpm_on_images_gets_a_diffusion_grid(tmp_path, digits, figures):
    model = tiny_ddpm_images(digits.levels)
    names = written_names(write_pictures(model, digits, tmp_path))
    assert "diffusion.png" in names and "score_field.png" not in names
    forward, reverse = figures["diffusion.png"].axes
    columns = len(DIFFUSION_TIMES["image"])
    assert len(forward.get_xticks()) == len(reverse.get_xticks()) == columns <= 8
    assert [label.get_text() for label in forward.get_xticklabels()][::columns - 1] == ["t = 0", "t = 1"]
    assert [label.get_text() for label in reverse.get_xticklabels()][::columns - 1] == ["t = 1", "t = 0"]
    # noised to t = 0 and shown at the data's levels, the test images come back exactly
    expected = plots.image_grid(digits.test[:DIFFUSION_EXAMPLES["image"]], digits.levels, nrow=1)
    first_column = forward.images[0].get_array()[:, :expected.shape[1]]
    np.testing.assert_array_equal(first_column, expected)


def test_models_without_the_hooks_get_no_diffusion_pictures(tmp_path, moons, gaussian_data):
    model = dgm.create("test-gaussian", shape=(2,))
    assert not any(model.offers(hook) for hook in ("noised", "reverse_path", "score"))
    names = written_names(write_pictures(model, gaussian_data, tmp_path))
    assert "samples.png" in names and not names & {"diffusion.png", "score_field.png"}


def test_class_conditional_ddpm_draws_paths_of_every_class_but_no_score_field(tmp_path, moons, monkeypatch):
    torch.manual_seed(0)
    model = dgm.create("ddpm", shape=(2,), steps=20, hidden=[8], n_classes=2)
    labels = []
    reverse_path = model.reverse_path
    monkeypatch.setattr(model, "reverse_path", lambda n, **options: labels.append(options["labels"])
                        or reverse_path(n, **options))
    # density.png asks log_prob without labels, which a class-conditional model refuses: not this test's business
    monkeypatch.setattr(plots, "density_2d", lambda *args, **kwargs: (None, 1.0))
    names = {path.name for path in write_pictures(model, moons, tmp_path) if path is not None}
    assert "diffusion.png" in names and "score_field.png" not in names  # its score needs a label
    assert torch.equal(labels[0], torch.arange(DIFFUSION_EXAMPLES["vector"]) % 2)


# -- the figure functions ---------------------------------------------------------------------------------------------
def test_diffusion_2d_figure_puts_forward_above_reverse_on_one_box(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(50, 2, generator=generator)
    forward = [(0.0, data), (0.5, 2 * data), (1.0, 10 * data)]
    reverse = [(1.0, 3 * data), (0.49, data + 1), (0.0, data)]  # in the sampler's order: sorted into the panels
    bounds = ((-3, 3), (-2, 4))
    figure = plots._diffusion_2d_figure(forward, reverse, bounds, reference=data[:10], title="model")
    top, bottom = np.reshape(figure.axes, (2, 3))
    assert [axes.get_title() for axes in top] == ["t = 0", "t = 0.5", "t = 1"]
    assert [axes.get_title() for axes in bottom] == ["t = 0", "t = 0.49", "t = 1"]
    for axes, (_, points) in zip(top, forward):
        np.testing.assert_allclose(axes.collections[0].get_offsets(), data[:10].numpy(), rtol=1e-6)
        np.testing.assert_allclose(offsets(axes), points.numpy(), rtol=1e-6)
    for axes, points in zip(bottom, (data, data + 1, 3 * data)):
        np.testing.assert_allclose(offsets(axes), points.numpy(), rtol=1e-6)
    for axes in figure.axes:
        assert axes.get_xlim() == (-3, 3) and axes.get_ylim() == (-2, 4)
    # a point keeps its colour along a row: the angle around the mean at the row's smallest time
    centred = data.numpy() - data.numpy().mean(axis=0)
    for axes in figure.axes:
        np.testing.assert_allclose(axes.collections[-1].get_array(), np.arctan2(centred[:, 1], centred[:, 0]),
                                   rtol=1e-6)
    assert png_size(plots.diffusion_2d(forward, reverse, bounds, tmp_path / "d.png"))[0] > 0


def test_diffusion_2d_notes_the_share_of_points_outside_the_box():
    points = torch.tensor([[0.0, 0.0], [0.5, 0.5], [9.0, 0.0], [0.0, -9.0]])
    figure = plots._diffusion_2d_figure([(0.0, points / 10), (1.0, points)], [(0.0, points)], ((-1, 1), (-1, 1)))
    top = figure.axes[:2]
    assert len(top[0].texts) == 0 and [text.get_text() for text in top[1].texts] == ["50% outside"]
    assert len(figure.axes) == 3  # the bottom row has one state: its unused panel is removed


@pytest.mark.parametrize("forward, match", [
    ([], "at least one state"),
    ([(0.0, torch.zeros(3, 2)), (1.0, torch.zeros(4, 2))], "one shape"),
    ([(0.0, torch.zeros(3, 3))], r"\(N, 2\)"),
])
def test_diffusion_2d_rejects_bad_states(tmp_path, forward, match):
    with pytest.raises(ValueError, match=match):
        plots.diffusion_2d(forward, [(0.0, torch.zeros(3, 2))], ((-1, 1), (-1, 1)), tmp_path / "d.png")


def test_score_field_draws_one_length_arrows_along_the_score(tmp_path):
    def score(points, t):  # of N(0, σ² I) with σ = t: points to the origin, |s| = |x| / t²
        return -points / t ** 2

    path = plots.score_field(score, ((-2, 2), (-1, 1)), tmp_path / "s.png", times=(0.1, 1.0), resolution=4,
                             reference=torch.zeros(3, 2), title="model")
    assert png_size(path)[0] > 0
    x, y, points = plots._grid(((-2, 2), (-1, 1)), 4)
    fields = {t: score(points, t).numpy().reshape(4, 4, 2) for t in (0.1, 1.0)}
    figure = plots._score_field_figure(x, y, fields, reference=torch.zeros(3, 2), title="model")
    panels = [axes for axes in figure.axes if axes.get_title()]
    assert [axes.get_title() for axes in panels] == ["t = 0.1", "t = 1"]
    assert "direction" in figure.get_suptitle() and "one length" in figure.get_suptitle()
    cell = 0.5  # the grid's cells are 1 wide and 0.5 high
    for axes, (t, field) in zip(panels, fields.items()):
        np.testing.assert_array_equal(axes.collections[0].get_offsets(), np.zeros((3, 2)))
        arrows = axes.collections[-1]
        np.testing.assert_allclose(np.stack([arrows.X, arrows.Y], axis=1), points.numpy())  # one arrow a point
        vectors = np.stack([arrows.U, arrows.V], axis=1)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 0.8 * cell, rtol=1e-6)
        expected = field.reshape(-1, 2) / np.linalg.norm(field.reshape(-1, 2), axis=1, keepdims=True)
        np.testing.assert_allclose(vectors / (0.8 * cell), expected, rtol=1e-6)
        np.testing.assert_allclose(arrows.get_array(), np.log10(np.linalg.norm(field.reshape(-1, 2), axis=1)),
                                   rtol=1e-6)
        assert arrows.get_clim() == pytest.approx((math.log10(np.sqrt(0.5 ** 2 + 0.25 ** 2)),
                                                   math.log10(np.sqrt(1.5 ** 2 + 0.75 ** 2) / 0.01)))


def test_score_field_rejects_a_bad_score(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plots.score_field(lambda points, t: points[:, :1], ((-1, 1), (-1, 1)), tmp_path / "s.png", resolution=3)
    with pytest.raises(ValueError, match="finite"):
        plots.score_field(lambda points, t: points / 0, ((-1, 1), (-1, 1)), tmp_path / "s.png", resolution=3)
    with pytest.raises(ValueError, match="at least one time"):
        plots.score_field(lambda points, t: points, ((-1, 1), (-1, 1)), tmp_path / "s.png", times=())


def test_diffusion_images_figure_puts_one_example_a_row_and_one_time_a_column(tmp_path):
    levels = 4
    images = [torch.full((2, 1, 3, 3), float(k)) for k in range(3)]  # at time k every pixel holds k
    images[0][1] = 3  # the second example starts white
    forward = [(t, x) for t, x in zip((0.0, 0.5, 1.0), images)]
    reverse = [(1.0, images[2][:1]), (0.0, images[0][:1])]
    figure = plots._diffusion_images_figure(forward, reverse, levels, title="model")
    top, bottom = figure.axes
    grey = top.images[0].get_array()[..., 0]
    assert grey.shape == (2 * 4 + 1, 3 * 4 + 1)
    value = [0, 85, 170, 255]
    for row in range(2):
        for column in range(3):
            cell = grey[1 + 4 * row:4 + 4 * row, 1 + 4 * column:4 + 4 * column]
            assert (cell == value[3 if row == 1 and column == 0 else column]).all()
    assert bottom.images[0].get_array().shape[:2] == (1 * 4 + 1, 2 * 4 + 1)
    assert [label.get_text() for label in top.get_xticklabels()] == ["t = 0", "t = 0.5", "t = 1"]
    assert [label.get_text() for label in bottom.get_xticklabels()] == ["t = 1", "t = 0"]
    np.testing.assert_allclose(top.get_xticks(), [2, 6, 10])  # the centres of the columns
    assert png_size(plots.diffusion_images(forward, reverse, levels, tmp_path / "d.png"))[0] == 700
    with pytest.raises(ValueError, match="0..3"):
        plots.diffusion_images([(0.0, torch.full((1, 1, 3, 3), 4.0))], reverse, levels, tmp_path / "d.png")


def test_density_grid_shrinks_to_fit_its_time_budget():
    """A slow log-density (a diffusion model's bound: milliseconds a point) gets a coarser density picture."""
    def slow(points):
        time.sleep(1e-3 * len(points))
        return torch.zeros(len(points))

    bounds = ((-1.0, 1.0), (-1.0, 1.0))
    assert density_resolution(lambda points: torch.zeros(len(points)), bounds) == 200
    assert 100 < density_resolution(slow, bounds, seconds=20) < 160  # √(20 / 1 ms) ≈ 141
    assert density_resolution(slow, bounds, seconds=0.5) == 40  # the coarsest grid drawn
