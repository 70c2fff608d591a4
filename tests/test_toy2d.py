"""2D toys: entropies against the reference numbers, normalisation, sampler-density agreement, closed forms."""
import functools
import math

import pytest
import torch

from dgm.data import toy2d
from dgm.data.base import load

TOYS = ["moons", "moons-raw", "circles", "rings", "8gaussians", "8gaussians-hw5", "25gaussians", "checkerboard",
        "2spirals", "pinwheel", "gaussians-2d"]

# reference-numbers.md §1 (FFJORD scaling); moons-raw is moons without the factor 2: 2.39 - 2 ln 2
REFERENCE_ENTROPY = {"checkerboard": 3.466, "8gaussians": 2.829, "moons": 2.39, "circles": 3.27, "rings": 2.63,
                     "2spirals": 2.64, "moons-raw": 1.00}
PINWHEEL_BOUND = math.log(5) + (1 + math.log(2 * math.pi * 0.3 * 0.1)) + 2 * math.log(2)  # 2.327
PINWHEEL_KNN = 2.315

CELLS = 24               # histogram cells per axis
SAMPLES = 20000
CONSISTENCY_SAMPLES = 2048


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@functools.cache
def samples(name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    return toy2d.distribution(name).sample_labelled(SAMPLES, generator(7))


@functools.cache
def cell_probabilities(name: str) -> torch.Tensor:
    """Probability of each of CELLS × CELLS cells of the toy's box, by the midpoint rule on sub-cells finer than the
    toy's resolution (a grid built here, independent of the one behind ``entropy()``)."""
    distribution = toy2d.distribution(name)
    (x0, x1), (y0, y1) = distribution.bounds
    per_cell = math.ceil(max(x1 - x0, y1 - y0) / CELLS / (0.8 * distribution.resolution))
    size = CELLS * per_cell
    xs = x0 + (x1 - x0) / size * (torch.arange(size, dtype=torch.float64) + 0.5)
    ys = y0 + (y1 - y0) / size * (torch.arange(size, dtype=torch.float64) + 0.5)
    density = distribution.log_prob(torch.cartesian_prod(xs, ys)).exp()
    area = (x1 - x0) * (y1 - y0) / size ** 2
    return (density * area).reshape(CELLS, per_cell, CELLS, per_cell).sum(dim=(1, 3))


def cell_counts(name: str) -> torch.Tensor:
    x = samples(name)[0].double()
    (x0, x1), (y0, y1) = toy2d.distribution(name).bounds
    assert ((x[:, 0] >= x0) & (x[:, 0] < x1) & (x[:, 1] >= y0) & (x[:, 1] < y1)).all()
    column = ((x[:, 0] - x0) / (x1 - x0) * CELLS).long()
    row = ((x[:, 1] - y0) / (y1 - y0) * CELLS).long()
    return torch.bincount(column * CELLS + row, minlength=CELLS ** 2).reshape(CELLS, CELLS).double()


# -- entropies --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REFERENCE_ENTROPY))
def test_entropy_matches_the_reference_numbers(name):
    assert toy2d.distribution(name).entropy() == pytest.approx(REFERENCE_ENTROPY[name], abs=0.02)


@pytest.mark.parametrize("name, reference", [*sorted(REFERENCE_ENTROPY.items()), ("pinwheel", PINWHEEL_KNN)])
def test_monte_carlo_entropy_of_fresh_samples_reproduces_the_reference_numbers(name, reference):
    """-mean log p over 20 000 samples (standard error about 0.006 nats) lands within 0.02 of the reference."""
    distribution = toy2d.distribution(name)
    x = distribution.sample(SAMPLES, generator(11))
    assert -distribution.log_prob(x).mean().item() == pytest.approx(reference, abs=0.02)


def test_pinwheel_entropy_is_below_the_analytic_bound_and_near_the_knn_estimate():
    entropy = toy2d.distribution("pinwheel").entropy()
    assert entropy <= PINWHEEL_BOUND
    assert entropy == pytest.approx(PINWHEEL_KNN, abs=0.02)


def test_moons_raw_is_moons_without_the_affine_map():
    # x -> 2x + shift changes the entropy by log |det| = 2 log 2
    difference = toy2d.distribution("moons").entropy() - toy2d.distribution("moons-raw").entropy()
    assert difference == pytest.approx(2 * math.log(2), abs=1e-4)


@pytest.mark.parametrize("name, components, std", [("8gaussians-hw5", 8, 0.02 / 1.414),
                                                   ("25gaussians", 25, 0.05 / 2.828)])
def test_well_separated_mixtures_have_log_k_plus_one_gaussian_entropy(name, components, std):
    # the modes lie more than 40 std apart, so H = log K + log(2 pi e std^2) to double precision
    expected = math.log(components) + 1 + math.log(2 * math.pi * std ** 2)
    assert toy2d.distribution(name).entropy() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("name", TOYS)
def test_sample_mean_of_log_density_is_minus_the_entropy(name):
    distribution = toy2d.distribution(name)
    log_p = distribution.log_prob(samples(name)[0][:CONSISTENCY_SAMPLES].double())
    standard_error = log_p.std().item() / math.sqrt(len(log_p))
    assert -log_p.mean().item() == pytest.approx(distribution.entropy(), abs=4 * standard_error + 1e-12)


# -- normalisation and agreement of sampler and density ---------------------------------------------------------------
@pytest.mark.parametrize("name", TOYS)
def test_density_integrates_to_one(name):
    assert cell_probabilities(name).sum().item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", TOYS)
def test_histogram_of_samples_follows_the_density(name):
    expected = SAMPLES * cell_probabilities(name).reshape(-1)
    observed = cell_counts(name).reshape(-1)
    rich = expected >= 5   # Pearson's chi-square over cells expecting 5 or more, the rest pooled into one cell
    observed = torch.cat([observed[rich], observed[~rich].sum().reshape(1)])
    expected = torch.cat([expected[rich], expected[~rich].sum().reshape(1)])
    chi_square = ((observed - expected) ** 2 / expected.clamp_min(1e-12)).sum().item()
    degrees = len(expected) - 1
    assert chi_square < degrees + 4 * math.sqrt(2 * degrees)


# -- closed forms and known values ------------------------------------------------------------------------------------
def test_circle_densities_in_closed_form_equal_the_quadrature_over_the_angle():
    for name in ("circles", "rings"):
        distribution = toy2d.distribution(name)
        anywhere = 8 * torch.rand(500, 2, generator=generator(), dtype=torch.float64) - 4
        x = torch.cat([samples(name)[0][:500].double(), anywhere])
        exact = distribution.log_prob(x)
        relevant = exact > -20
        quadrature = distribution.quadrature_log_prob(x)
        assert torch.allclose(quadrature[relevant], exact[relevant], rtol=0, atol=1e-6)


@pytest.mark.parametrize("curve_class", [toy2d.Moons, toy2d.TwoSpirals])
def test_quadrature_agrees_with_a_four_times_finer_rule(curve_class):
    finer = type("Finer", (curve_class,), {"PANEL_LENGTH": curve_class.PANEL_LENGTH / 4})()
    default = curve_class()
    x = default.sample(300, generator(1)).double()
    assert torch.allclose(default.log_prob(x), finer.log_prob(x), rtol=0, atol=1e-6)


def test_checkerboard_is_uniform_on_the_dark_squares():
    board = toy2d.distribution("checkerboard")
    # squares (i, j) = (floor(x/2), floor(y/2)): dark (0,0), (-2,-2), (-1,-1), (1,1); light (0,-1), (-2,-1), (1,-2)
    dark = torch.tensor([[1.0, 1.0], [-3.0, -3.0], [-1.0, -1.0], [3.0, 3.0]], dtype=torch.float64)
    light = torch.tensor([[1.0, -1.0], [-3.0, -1.0], [3.0, -3.0], [4.5, 0.5]], dtype=torch.float64)
    assert torch.equal(board.log_prob(dark), torch.full((4,), -math.log(32), dtype=torch.float64))
    assert torch.isneginf(board.log_prob(light)).all()
    assert board.entropy() == math.log(32)


def test_pinwheel_density_at_the_centre_and_at_an_arm_mode():
    pinwheel = toy2d.distribution("pinwheel")
    # y = 0 comes from f = 0 on every arm, where det = 4: p(0) = N(0; (1, 0), diag(0.09, 0.01)) / 4
    log_normal_at_zero = -0.5 / 0.09 - math.log(2 * math.pi * 0.03)
    # the mode f = (1, 0) of arm k lands on y = 2 (cos a, -sin a), a = 2 pi k / 5 + e / 4, again with det = 4
    angle = 2 * math.pi * 3 / 5 + math.e / 4
    points = torch.tensor([[0.0, 0.0], [2 * math.cos(angle), -2 * math.sin(angle)]], dtype=torch.float64)
    expected = torch.tensor([log_normal_at_zero - math.log(4),
                             -math.log(2 * math.pi * 0.03) - math.log(4) - math.log(5)], dtype=torch.float64)
    assert torch.allclose(pinwheel.log_prob(points), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode, covariance", [("rotated", [[5.0, 4.0], [4.0, 5.0]]),
                                              ("diagonal", [[9.0, 0.0], [0.0, 1.0]])])
def test_hw2_gaussian_has_the_closed_form_moments_density_and_entropy(mode, covariance):
    gaussian = toy2d.distribution("gaussians-2d", mode=mode)
    x = gaussian.sample(SAMPLES, generator(2)).double()
    assert torch.allclose(x.mean(0), torch.tensor([2.0, 3.0], dtype=torch.float64), atol=0.06)
    assert torch.allclose(torch.cov(x.T), torch.tensor(covariance, dtype=torch.float64), atol=0.2)
    # det(covariance) = 9 in both modes: log p(mean) = -log(2 pi * 3), H = log(2 pi e) + log 3
    assert gaussian.log_prob(torch.tensor([[2.0, 3.0]])).item() == pytest.approx(-math.log(6 * math.pi))
    assert gaussian.entropy() == pytest.approx(1 + math.log(2 * math.pi) + math.log(3), abs=1e-12)


@pytest.mark.parametrize("name, centres", [("8gaussians", 4 / 1.414 * toy2d._eight_directions()),
                                           ("8gaussians-hw5", 2 / 1.414 * toy2d._eight_directions())])
def test_mixture_labels_name_the_nearest_centre(name, centres):
    x, labels = samples(name)
    nearest = torch.cdist(x.double(), centres).argmin(dim=1)
    assert (nearest == labels).double().mean().item() > 0.99


@pytest.mark.parametrize("name, radii", [("circles", [3.0, 1.5]), ("rings", [3.0, 2.25, 1.5, 0.75])])
def test_ring_labels_name_the_nearest_radius(name, radii):
    x, labels = samples(name)
    nearest = (x.double().norm(dim=1, keepdim=True) - torch.tensor(radii, dtype=torch.float64)).abs().argmin(dim=1)
    assert (nearest == labels).double().mean().item() > 0.99
    assert torch.bincount(labels).double().div(SAMPLES).sub(1 / len(radii)).abs().max() < 0.02


# -- data sets, seeds and errors --------------------------------------------------------------------------------------
def test_load_gives_fresh_train_and_test_draws_and_reproduces_them():
    data = load("moons", n_train=300, n_test=200, seed=5)
    assert data.train.shape == (300, 2) and data.test.shape == (200, 2) and data.train.dtype == torch.float32
    assert data.levels is None and data.train_labels.shape == (300,)
    assert data.distribution is toy2d.distribution("moons")
    assert not torch.equal(data.train[:200], data.test)
    again = load("moons", n_train=300, n_test=200, seed=5)
    assert torch.equal(data.train, again.train) and torch.equal(data.test, again.test)
    assert not torch.equal(load("moons", n_train=300, n_test=200, seed=6).train, data.train)
    assert load("checkerboard", n_train=10, n_test=10).train_labels is None
    assert load("gaussians-2d", n_train=10, n_test=10, mode="diagonal").distribution is toy2d.distribution(
        "gaussians-2d", mode="diagonal")


def test_generator_reproduces_samples():
    for name in TOYS:
        distribution = toy2d.distribution(name)
        assert torch.equal(distribution.sample(50, generator(3)), distribution.sample(50, generator(3)))


def test_bad_input_is_refused_with_value_error():
    moons = toy2d.distribution("moons")
    with pytest.raises(ValueError, match="shape"):
        moons.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="integer of at least 1"):
        moons.sample(0)
    with pytest.raises(ValueError, match="unknown 2D toy"):
        toy2d.distribution("spiral")
    with pytest.raises(ValueError, match="options"):
        toy2d.distribution("moons", noise=0.2)
    with pytest.raises(ValueError, match="mode"):
        toy2d.distribution("gaussians-2d", mode="multivariate-ish")
    with pytest.raises(ValueError, match="seed"):
        load("moons", seed=1.5)


def test_grid_is_the_midpoint_rule():
    points, area = toy2d.grid(((-1.0, 1.0), (0.0, 3.0)), 0.5)
    assert points.shape == (4 * 6, 2) and area == pytest.approx(0.25)
    # ∫∫ x² + y² = 2 + 18; the midpoint rule misses (length · step² / 12) · width per coordinate: 0.125 + 0.125
    assert ((points ** 2).sum(1) * area).sum().item() == pytest.approx(20 - 0.25, abs=1e-12)
