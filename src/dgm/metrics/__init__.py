"""Evaluation: likelihoods (NLL, bits/dim) and sample quality (FID, KID, Inception Score, precision/recall,
density/coverage, mode coverage) with offline feature extractors. Metric names carry their feature space: ``fid`` is
the Inception FID of papers, ``fid-digits`` the Fréchet distance on dgm's digit classifier, ``fid-raw`` on the data
vectors (:data:`METRICS`, :mod:`dgm.metrics.quality`)."""
from dgm.metrics.features import DigitFeatures, InceptionFeatures, RawFeatures
from dgm.metrics.frechet import GaussianStatistics, fit_gaussian, frechet_distance
from dgm.metrics.inception_score import inception_score
from dgm.metrics.kernel import kernel_inception_distance
from dgm.metrics.likelihood import log_likelihoods, nll_label, nll_summary
from dgm.metrics.manifold import manifold_metrics
from dgm.metrics.modes import mode_metrics
from dgm.metrics.quality import METRICS, SampleQuality, compare_image_sets, model_quality

__all__ = ["log_likelihoods", "nll_summary", "nll_label", "frechet_distance", "fit_gaussian", "GaussianStatistics",
           "kernel_inception_distance", "manifold_metrics", "inception_score", "mode_metrics", "SampleQuality",
           "model_quality", "compare_image_sets", "METRICS", "InceptionFeatures", "DigitFeatures", "RawFeatures"]
