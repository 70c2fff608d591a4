"""Fréchet distance: closed forms, the course's test case, scipy's sqrtm formula, singular covariances, streaming."""
import numpy as np
import pytest
import scipy.linalg
import torch

from dgm.metrics.frechet import GaussianStatistics, fit_gaussian, frechet_distance


def scipy_frechet(mu1, sigma1, mu2, sigma2):
    """The formula of pytorch-fid and the course: scipy.linalg.sqrtm(Σ1 Σ2).real."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return ((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root)


def random_covariance(d, generator, scale=1.0):
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return scale * (a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64))


def test_course_test_case():
    """Homework 6: μx = 1₃, μy = 10·1₃, Σx = 5I, Σy = 3I → 243.7621."""
    value = frechet_distance(np.ones(3), 5 * np.eye(3), 10 * np.ones(3), 3 * np.eye(3))
    assert value == pytest.approx(243 + 24 - 6 * np.sqrt(15), rel=1e-12)
    assert round(value, 4) == 243.7621


def test_closed_form_of_commuting_gaussians():
    """For diagonal covariances d² = ‖μ1 − μ2‖² + Σ (√a_i − √b_i)²."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(20, generator=generator, dtype=torch.float64) + 0.1, torch.rand(20, dtype=torch.float64) * 3
    mu1, mu2 = torch.randn(20, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    expected = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected.item(), rel=1e-12)


def test_agrees_with_scipy_sqrtm_on_well_conditioned_covariances():
    generator = torch.Generator().manual_seed(1)
    for d in (2, 16, 100):
        s1, s2 = random_covariance(d, generator), random_covariance(d, generator, scale=2.0)
        mu1, mu2 = torch.randn(d, generator=generator, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
        reference = scipy_frechet(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)


def test_singular_covariances_fewer_samples_than_dimensions():
    """10 samples in 64 dimensions: rank-9 covariances (the pivoted Cholesky path); the distance is finite, real and
    symmetric, and 0 for a set with itself. The identity d² = tr Σ1 + tr Σ2 − 2 ‖X1ᵀX2‖_* / (n−1) checks the trace
    term exactly: the zero eigenvalues are left out, so there is no √(rounding error) floor."""
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(10, 64, generator=generator, dtype=torch.float64), torch.randn(10, 64, dtype=torch.float64)
    a, b = fit_gaussian(x), fit_gaussian(y)
    distance = a.distance(b)
    xc, yc = x - x.mean(0), y - y.mean(0)
    nuclear = torch.linalg.svdvals(xc @ yc.T).sum() / 9
    expected = ((a.mean - b.mean) ** 2).sum() + a.covariance.trace() + b.covariance.trace() - 2 * nuclear
    assert distance == pytest.approx(expected.item(), rel=1e-12)
    assert distance == pytest.approx(b.distance(a), rel=1e-12)
    assert a.distance(a) == pytest.approx(0, abs=1e-10)


def test_a_collapsed_set_has_zero_covariance():
    """Identical samples (a collapsed generator): Σ1 = 0 has rank 0 and d² = ‖μ1 − μ2‖² + tr Σ2, either way round."""
    collapsed = fit_gaussian(torch.ones(5, 4))
    other = fit_gaussian(torch.randn(20, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64))
    expected = ((other.mean - 1) ** 2).sum() + other.covariance.trace()
    assert collapsed.distance(other) == pytest.approx(expected.item(), rel=1e-12)
    assert other.distance(collapsed) == pytest.approx(expected.item(), rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(500, 32, generator=generator) * 3 + 10
    assert fit_gaussian(x).distance(fit_gaussian(x)) == pytest.approx(0, abs=1e-8)


def test_streaming_statistics_equal_numpy_cov_with_a_large_offset():
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(300, 8, generator=generator, dtype=torch.float64) + 1e4
    streamed = GaussianStatistics(8)
    for batch in x.split(37):
        streamed.update(batch)
    assert torch.allclose(streamed.mean, x.mean(0), rtol=1e-14)
    assert np.allclose(streamed.covariance.numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-9, atol=1e-12)


def test_statistics_save_and_load(tmp_path):
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(5))
    saved = fit_gaussian(x)
    saved.save(tmp_path / "stats.safetensors")
    loaded = GaussianStatistics.load(tmp_path / "stats.safetensors")
    assert loaded.count == 50 and torch.equal(loaded.squares, saved.squares)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        fit_gaussian(torch.zeros(1, 3)).covariance
