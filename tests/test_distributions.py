"""dgm.distributions: normalisation, agreement with torch.distributions, entropies and moments against Monte Carlo,
the discretized Gaussian against its CDF definition, the codec, and refusal of bad input."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from scipy.stats import chisquare, norm

import dgm
from dgm.distributions import (Bernoulli, Categorical, CategoricalPixels, DiagonalNormal, DiscretizedGaussian,
                               DiscretizedLogisticMixture, Gaussian, MixtureOfGaussians, StandardNormal, to_interval,
                               to_levels)

DOUBLE = torch.float64
STANDARD_ERRORS = 4  # Monte-Carlo estimates must lie this many standard errors from the exact value


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=generator(seed), dtype=DOUBLE) * scale


def every_cell(levels, dims):
    """Every point of ``{0..levels-1}^dims``, ``(levels^dims, dims)``."""
    return torch.tensor(list(itertools.product(range(levels), repeat=dims)), dtype=DOUBLE)


def repeat_rows(t, count):
    """Each row of ``t`` repeated ``count`` times in a row: ``(B·count, …)``."""
    return t.repeat_interleave(count, dim=0)


def assert_within_standard_errors(draws, expected):
    """The mean of the i.i.d. ``draws`` lies within ``STANDARD_ERRORS`` standard errors of ``expected``."""
    standard_error = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - float(expected)) < STANDARD_ERRORS * standard_error.item()


# -- the codec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 3, 16, 256])
def test_codec_round_trip_is_exact_for_every_level_and_each_bin_decodes_to_its_value(levels):
    values = torch.arange(levels, dtype=torch.float32)
    centres = to_interval(values, levels)
    assert centres[0] == -1 and centres[-1] == 1
    assert torch.equal(to_levels(centres, levels), values)
    half_bin = 1 / (levels - 1)
    for offset in (-0.99 * half_bin, 0.99 * half_bin):  # every point of a bin decodes to the bin's value
        assert torch.equal(to_levels(centres + offset, levels), values)
    assert torch.equal(to_levels(torch.tensor([-7.0, 7.0]), levels), torch.tensor([0.0, levels - 1]))


def test_codec_refuses_too_few_levels():
    with pytest.raises(ValueError, match="levels"):
        to_interval(torch.zeros(3), 1)


# -- discrete likelihoods: normalisation -------------------------------------------------------------------------


# Random parameters for ``rows`` examples, each row repeated ``copies`` times (``rows · copies`` examples in all).


def bernoulli(rows, copies, levels=2):
    return Bernoulli(repeat_rows(randn(rows, 3, scale=2.0), copies))


def categorical(rows, copies, levels):
    return Categorical(repeat_rows(randn(rows, levels, 2, scale=2.0), copies))


def discretized_gaussian(rows, copies, levels):
    loc, log_scale = randn(rows, 2), randn(rows, 2, seed=1) - 1
    return DiscretizedGaussian(repeat_rows(loc, copies), repeat_rows(log_scale, copies), levels)


@pytest.mark.parametrize("make, levels, dims", [(bernoulli, 2, 3), (categorical, 4, 2), (discretized_gaussian, 4, 2),
                                                (discretized_gaussian, 2, 2)])
def test_discrete_likelihoods_sum_to_one_over_every_value(make, levels, dims):
    rows, cells = 5, every_cell(levels, dims)
    log_p = make(rows, len(cells), levels).log_prob(cells.repeat(rows, 1)).view(rows, len(cells))
    torch.testing.assert_close(log_p.exp().sum(dim=1), torch.ones(rows, dtype=DOUBLE))


def test_categorical_pixels_head_sums_to_one_over_every_image_of_a_pixel():
    head = CategoricalPixels(channels=2, levels=3)
    cells = every_cell(3, 2)
    params = repeat_rows(randn(4, head.param_channels), len(cells))
    log_p = head.log_prob(params, cells.repeat(4, 1)).view(4, len(cells))
    torch.testing.assert_close(log_p.exp().sum(dim=1), torch.ones(4, dtype=DOUBLE))


def test_log_prob_of_an_image_is_the_sum_over_its_pixels():
    """The heads score whole examples ``(N,)``: the sum of the log-probabilities of their pixels."""
    mixture = DiscretizedLogisticMixture(channels=3, levels=8, components=2)
    params = randn(2, mixture.param_channels, 3, 2)
    x = torch.randint(0, 8, (2, 3, 3, 2), generator=generator()).double()
    pixels = mixture.log_prob(params.movedim(1, -1).reshape(12, -1), x.movedim(1, -1).reshape(12, 3))
    torch.testing.assert_close(mixture.log_prob(params, x), pixels.view(2, 6).sum(dim=1))


# -- agreement with torch.distributions --------------------------------------------------------------------------


def test_bernoulli_log_prob_and_entropy_equal_torch():
    logits = randn(6, 2, 3, scale=3.0)
    ours, reference = Bernoulli(logits), td.Independent(td.Bernoulli(logits=logits), 2)
    x = torch.bernoulli(torch.full_like(logits, 0.5), generator=generator(1))
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x))
    torch.testing.assert_close(ours.entropy(), reference.entropy())


@pytest.mark.parametrize("dim", [1, -1])
def test_categorical_log_prob_and_entropy_equal_torch(dim):
    logits = randn(6, 5, 3, scale=2.0)  # levels on axis 1 (dim=1) or on the last axis (dim=-1)
    ours = Categorical(logits, dim=dim)
    reference = td.Independent(td.Categorical(logits=logits.movedim(dim, -1)), 1)
    x = torch.randint(0, logits.shape[dim], ours.shape, generator=generator(1))
    torch.testing.assert_close(ours.log_prob(x.double()), reference.log_prob(x))
    torch.testing.assert_close(ours.entropy(), reference.entropy())


@pytest.mark.parametrize("log_scale", ["learned", -0.7])
def test_gaussian_log_prob_and_entropy_equal_torch(log_scale):
    loc = randn(4, 3, 2)
    log_scale = randn(4, 3, 2, seed=1) if log_scale == "learned" else log_scale
    ours = Gaussian(loc, log_scale)
    reference = td.Independent(td.Normal(loc, torch.exp(torch.as_tensor(log_scale, dtype=DOUBLE))), 2)
    x = randn(4, 3, 2, seed=2, scale=2.0)
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x))
    torch.testing.assert_close(ours.entropy(), reference.entropy().expand(4))


def test_standard_and_diagonal_normal_equal_torch_on_any_batch_shape():
    shape = (2, 3)
    standard = StandardNormal(shape).double()
    diagonal = DiagonalNormal(shape).double()
    with torch.no_grad():
        diagonal.loc.copy_(randn(*shape))
        diagonal.log_scale.copy_(randn(*shape, seed=1) * 0.5)
    z = randn(4, 5, *shape, seed=2)  # batch shape (4, 5)
    reference_standard = td.Independent(td.Normal(torch.zeros(shape, dtype=DOUBLE), 1.0), 2)
    reference_diagonal = td.Independent(td.Normal(diagonal.loc.detach(), diagonal.log_scale.detach().exp()), 2)
    torch.testing.assert_close(standard.log_prob(z), reference_standard.log_prob(z))
    torch.testing.assert_close(diagonal.log_prob(z), reference_diagonal.log_prob(z))
    torch.testing.assert_close(standard.entropy(), reference_standard.entropy())
    torch.testing.assert_close(diagonal.entropy(), reference_diagonal.entropy())


def test_mixture_of_gaussians_equals_torch_mixture_same_family():
    torch.manual_seed(0)
    mixture = MixtureOfGaussians((2,), components=3).double()
    with torch.no_grad():
        mixture.logits.copy_(randn(3))
        mixture.log_scales.copy_(randn(3, 2, seed=1) * 0.5)
    reference = td.MixtureSameFamily(td.Categorical(logits=mixture.logits.detach()),
                                     td.Independent(td.Normal(mixture.locs.detach(),
                                                              mixture.log_scales.detach().exp()), 1))
    z = randn(7, 2, seed=2, scale=2.0)
    torch.testing.assert_close(mixture.log_prob(z), reference.log_prob(z))


# -- the discretized Gaussian (Ho et al., 2020, eq. 13) ----------------------------------------------------------


def reference_log_bin_probabilities(levels, loc, scale):
    """``log P(x)`` for every value from scipy's log-CDF and log-survival function in double precision: the bin's
    mass as a difference of CDFs (survival functions right of the mean, where the CDFs round to 1)."""
    centres = 2 * np.arange(levels) / (levels - 1) - 1
    half_bin = 1 / (levels - 1)
    lower, upper = (centres - half_bin - loc) / scale, (centres + half_bin - loc) / scale
    with np.errstate(divide="ignore"):  # each side is evaluated at every bin; the side not taken may be -inf
        left = norm.logcdf(upper) + np.log1p(-np.exp(norm.logcdf(lower) - norm.logcdf(upper)))
        right = norm.logsf(lower) + np.log1p(-np.exp(norm.logsf(upper) - norm.logsf(lower)))
    log_p = np.where(lower + upper > 0, right, left)
    log_p[0], log_p[-1] = norm.logcdf(upper[0]), norm.logsf(lower[-1])  # the end bins reach to -∞ and +∞
    return torch.from_numpy(log_p)


@pytest.mark.parametrize("loc, scale", [(0.1, 0.3), (-0.9, 0.05), (0.95, 0.02), (2.0, 1.5), (0.0, 10.0)])
def test_discretized_gaussian_is_the_gaussian_mass_of_each_bin_with_open_end_bins(loc, scale):
    levels = 16
    values = torch.arange(levels, dtype=DOUBLE)[:, None]  # one example per value
    distribution = DiscretizedGaussian(torch.full((levels, 1), loc, dtype=DOUBLE),
                                       math.log(scale), levels)
    ours = distribution.log_prob(values)
    torch.testing.assert_close(ours, reference_log_bin_probabilities(levels, loc, scale), rtol=1e-9, atol=0)
    assert ours.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_discretized_gaussian_approaches_density_times_bin_width_for_small_bins():
    levels, loc, scale = 256, 0.1, 0.2
    values = torch.arange(levels, dtype=DOUBLE)[:, None]
    centres = to_interval(values, levels)
    near_mean = (centres - loc).abs()[:, 0] < 2 * scale
    log_p = DiscretizedGaussian(torch.full_like(values, loc), math.log(scale), levels).log_prob(values)
    midpoint = norm.logpdf(centres[:, 0].numpy(), loc, scale) + math.log(2 / (levels - 1))
    torch.testing.assert_close(log_p[near_mean], torch.from_numpy(midpoint)[near_mean], rtol=0, atol=1e-3)


def test_discretized_gaussian_stays_finite_and_normalised_at_extreme_parameters():
    levels = 256
    # a sharp Gaussian beyond the end bin, a sharp one inside, a very broad one; every value for each
    loc = repeat_rows(torch.tensor([[3.0], [-0.5], [0.0]], dtype=DOUBLE), levels).requires_grad_()
    log_scale = repeat_rows(torch.tensor([[-7.0], [-7.0], [5.0]], dtype=DOUBLE), levels).requires_grad_()
    values = torch.arange(levels, dtype=DOUBLE)[:, None].repeat(3, 1)
    log_p = DiscretizedGaussian(loc, log_scale, levels).log_prob(values)
    assert torch.isfinite(log_p).all()
    torch.testing.assert_close(log_p.view(3, levels).exp().sum(dim=1), torch.ones(3, dtype=DOUBLE))
    log_p.sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(log_scale.grad).all()


def test_discretized_gaussian_mode_and_mean():
    levels = 5
    loc = torch.tensor([[to_interval(torch.tensor(3.0), levels).item()], [0.0]], dtype=DOUBLE)
    distribution = DiscretizedGaussian(loc, torch.tensor([[-4.0], [3.0]], dtype=DOUBLE), levels)
    # sharp at value 3; so broad that the open end bins hold almost all the mass (a tie, the first wins)
    assert distribution.mode.tolist() == [[3.0], [0.0]]
    torch.testing.assert_close(distribution.mean, torch.tensor([[3.0], [2.0]], dtype=DOUBLE))


# -- entropies and moments against Monte Carlo -------------------------------------------------------------------


DRAWS = 20000  # a data distribution of DRAWS identical rows: one sample() gives DRAWS i.i.d. draws


def gaussian(rows, copies, levels=None):
    return Gaussian(repeat_rows(randn(rows, 3), copies), repeat_rows(randn(rows, 3, seed=1) * 0.5, copies))


@pytest.mark.parametrize("make, levels", [(bernoulli, 2), (categorical, 4), (gaussian, None),
                                          (discretized_gaussian, 6)])
def test_closed_form_entropy_matches_monte_carlo(make, levels):
    torch.manual_seed(0)
    distribution = make(1, DRAWS, levels)
    surprisals = -distribution.log_prob(distribution.sample())
    assert_within_standard_errors(surprisals, distribution.entropy()[0])


@pytest.mark.parametrize("prior", ["standard", "diagonal"])
def test_prior_entropy_matches_monte_carlo(prior):
    torch.manual_seed(0)
    distribution = StandardNormal((3,)).double() if prior == "standard" else DiagonalNormal((3,)).double()
    if prior == "diagonal":
        with torch.no_grad():
            distribution.log_scale.copy_(randn(3) * 0.5)
    surprisals = -distribution.log_prob(distribution.sample(DRAWS))
    assert_within_standard_errors(surprisals, distribution.entropy().detach())


@pytest.mark.parametrize("name", ["categorical", "discretized_gaussian"])
def test_discrete_sample_moments_and_frequencies_match_the_probabilities(name):
    torch.manual_seed(0)
    levels = 6
    if name == "categorical":
        distribution = Categorical(repeat_rows(torch.tensor([[[0.5], [-1.0], [0.0], [1.5], [0.2], [-0.3]]],
                                                            dtype=DOUBLE), DRAWS))
    else:
        distribution = DiscretizedGaussian(torch.full((DRAWS, 1), 0.2, dtype=DOUBLE), math.log(0.5), levels)
    x = distribution.sample()[:, 0]  # the first entry of every draw
    probabilities = distribution.value_log_probs()[0, :, 0].exp()
    mean = distribution.mean[0, 0]
    variance = (probabilities * (torch.arange(levels, dtype=DOUBLE) - mean) ** 2).sum()
    assert_within_standard_errors(x, mean)
    assert_within_standard_errors((x - mean) ** 2, variance)
    counts = torch.bincount(x.long(), minlength=levels).double()
    assert chisquare(counts.numpy(), (probabilities * DRAWS).numpy()).pvalue > 1e-3


def test_gaussian_sample_moments():
    torch.manual_seed(0)
    loc, log_scale = torch.tensor([[0.5, -2.0]], dtype=DOUBLE), torch.tensor([[-1.0, 0.7]], dtype=DOUBLE)
    x = Gaussian(repeat_rows(loc, DRAWS), repeat_rows(log_scale, DRAWS)).sample()
    for i in range(2):
        assert_within_standard_errors(x[:, i], loc[0, i])
        assert_within_standard_errors((x[:, i] - loc[0, i]) ** 2, math.exp(2 * log_scale[0, i]))


def test_mixture_of_gaussians_sample_moments():
    torch.manual_seed(0)
    mixture = MixtureOfGaussians((1,), components=3).double()
    with torch.no_grad():
        mixture.logits.copy_(torch.tensor([0.0, 1.0, -1.0]))
        mixture.log_scales.fill_(-1.0)
    x = mixture.sample(DRAWS)[:, 0]
    weights, locs = torch.softmax(mixture.logits.detach(), 0), mixture.locs.detach()[:, 0]
    mean = (weights * locs).sum()
    variance = (weights * (math.exp(-2.0) + locs ** 2)).sum() - mean ** 2
    assert_within_standard_errors(x, mean)
    assert_within_standard_errors((x - mean) ** 2, variance)


# -- base distributions as modules -------------------------------------------------------------------------------


def test_base_distributions_are_modules_with_the_right_state_device_and_dtype():
    standard = StandardNormal((1, 2, 2))
    assert not list(standard.parameters()) and standard.state_dict() == {}
    assert standard.sample(3).shape == (3, 1, 2, 2) and standard.sample((2, 3)).shape == (2, 3, 1, 2, 2)
    assert standard.double().sample(2).dtype == DOUBLE
    diagonal, mixture = DiagonalNormal((2,)), MixtureOfGaussians((2,), components=4)
    assert set(diagonal.state_dict()) == {"loc", "log_scale"}
    assert set(mixture.state_dict()) == {"logits", "locs", "log_scales"}
    assert mixture.double().sample(5).dtype == DOUBLE
    diagonal.rsample(4).sum().backward()
    assert diagonal.loc.grad is not None and diagonal.log_scale.grad is not None


# -- refusal of bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution, bad, match", [
    (Bernoulli(torch.zeros(2, 3)), torch.full((2, 3), 2.0), "0..1"),
    (Bernoulli(torch.zeros(2, 3)), torch.zeros(3, 3), "2 examples"),
    (Categorical(torch.zeros(2, 4, 3)), torch.full((2, 3), 4.0), "0..3"),
    (Categorical(torch.zeros(2, 4, 3)), torch.full((2, 3), 0.5), "integer"),
    (Categorical(torch.zeros(2, 4, 3)), torch.zeros(2, 4), "shape"),
    (DiscretizedGaussian(torch.zeros(2, 3), 0.0, 8), torch.full((2, 3), -1.0), "0..7"),
    (Gaussian(torch.zeros(2, 3)), torch.zeros(2, 3, 1), "shape"),
    (Gaussian(torch.zeros(2, 3)), torch.full((2, 3), math.nan), "NaN"),
])
def test_likelihoods_refuse_bad_data(distribution, bad, match):
    with pytest.raises(ValueError, match=match):
        distribution.log_prob(bad)


def test_heads_refuse_data_of_the_wrong_shape_and_leave_values_to_the_model():
    mixture = DiscretizedLogisticMixture(channels=3, levels=4, components=2)
    with pytest.raises(ValueError, match="shape"):
        mixture.log_prob(torch.zeros(2, mixture.param_channels, 2, 2), torch.zeros(2, 1, 2, 2))
    head = CategoricalPixels(channels=1, levels=2)
    with pytest.raises(ValueError, match="3 examples"):
        head.log_prob(torch.zeros(3, 2, 3, 3), torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"shape \(2, 1, 3, 3\)"):
        head.log_prob(torch.zeros(2, 2, 3, 3), torch.zeros(2, 1, 3, 2))
    # the values are the model's to check (core.DATA_METHODS), once per call, not the head's again
    model = dgm.create("pixelcnn", shape=(1, 3, 3), levels=2, filters=4, layers=1, kernel_size=3)
    with pytest.raises(ValueError, match="0..1"):
        model.log_prob(torch.full((2, 1, 3, 3), 3.0))


def test_bad_parameters_and_events_are_refused():
    with pytest.raises(ValueError, match="axis other than the first"):
        Categorical(torch.zeros(2, 4), dim=0)
    with pytest.raises(ValueError, match="shape"):
        StandardNormal((2,)).log_prob(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="shape"):
        MixtureOfGaussians((2, 2), components=2).log_prob(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="positive integers"):
        DiagonalNormal(())
    with pytest.raises(ValueError, match="sample_shape"):
        StandardNormal((2,)).sample(0)


def test_the_8bit_scale_maps_the_first_and_last_level_to_0_and_255():
    from dgm.distributions import to_8bit_scale
    for levels in (2, 17, 256):
        pixels = to_8bit_scale(torch.arange(levels, dtype=torch.float64), levels)
        assert pixels[0] == 0 and pixels[-1] == 255 and torch.all(pixels.diff() > 0)
    assert torch.equal(to_8bit_scale(torch.arange(256.0), 256), torch.arange(256.0))
