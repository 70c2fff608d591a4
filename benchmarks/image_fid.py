"""The FID protocol of the image benchmarks (benchmarks/gan_dcgan.py, benchmarks/ddpm_diffusers.py): one protocol
for every row, as ``dgm evaluate --metrics fid`` computes it (:func:`dgm.metrics.quality.model_quality`).

N samples of each model, drawn by :func:`~dgm.metrics.quality.generated_samples` in batches of
:data:`SAMPLE_BATCH` in the data's convention (rounded to pixel levels), against the first N test images, on the
TF-FID InceptionV3 features of :class:`~dgm.metrics.features.InceptionFeatures`. The test features come from
:func:`~dgm.metrics.quality.reference_features`, cached in ``$DGM_CACHE/reference`` as for ``dgm evaluate``. The
floor is the same FID of the first N *training* images (their features cached the same way): about what a perfect
model would score. Inception features take about 0.1 s per image on one CPU thread, 15 minutes for 10 000 images.

A model is anything with ``sample(n)`` returning ``n`` images in the data's convention: a dgm model, a dgm model
with fixed sampling options and arithmetic (:class:`WithSampleOptions`), or a wrapper of another library's network
and sampler.
"""
from __future__ import annotations

import sys
import time

import torch
from torch import Tensor

from dgm.core import sample_in_precision
from dgm.metrics.features import InceptionFeatures
from dgm.metrics.frechet import GaussianStatistics, fit_gaussian
from dgm.metrics.quality import as_extractor_input, generated_samples, reference_features

SAMPLE_BATCH = 500  # as dgm evaluate draws them


class WithSampleOptions:
    """A dgm model whose ``sample(n)`` uses the sampling options ``options`` (none: the model's own sampler), in
    the arithmetic of Lightning's ``precision`` (:func:`dgm.core.sample_in_precision`), as float32 images; a
    class-conditional model's labels pass through."""

    def __init__(self, model, precision: str, **options):
        self.model, self.precision, self.options = model, precision, options
        self.n_classes, self.device = model.n_classes, model.device

    def sample(self, n: int, **condition) -> Tensor:
        return sample_in_precision(self.model, n, self.precision, **condition, **self.options)


def check_samples(data, n: int) -> None:
    """Refuse an FID of more samples than the data have test images."""
    if n > len(data.test):
        raise SystemExit(f"--samples {n} exceeds the {len(data.test)} test images of {data.name}")


def test_statistics(extractor: InceptionFeatures, data, n: int) -> GaussianStatistics:
    """The Gaussian of the features of the first ``n`` test images (cached features)."""
    return fit_gaussian(reference_features(data, extractor, "test", n, progress=True))


def fid(extractor: InceptionFeatures, test: GaussianStatistics, images: Tensor, data) -> float:
    """The FID of ``images`` (the data's convention) against the test images' statistics, as ``dgm evaluate``."""
    features = extractor.features(as_extractor_input(images, data), progress=True)
    return test.distance(fit_gaussian(features))


def floor_fid(extractor: InceptionFeatures, test: GaussianStatistics, data, n: int) -> float:
    """The FID of the first ``n`` training images (cached features): about what a perfect model would score."""
    return test.distance(fit_gaussian(reference_features(data, extractor, "train", n, progress=True)))


def timed_samples(model, n: int, seed: int, name: str) -> tuple[Tensor, float]:
    """``n`` samples of ``model`` drawn from the seed ``seed``, and the seconds they took."""
    print(f"{name}: {n} samples", file=sys.stderr, flush=True)
    torch.manual_seed(seed)
    started = time.perf_counter()
    samples = generated_samples(model, n, SAMPLE_BATCH, progress=True)
    return samples, time.perf_counter() - started


def model_fid(extractor: InceptionFeatures, test: GaussianStatistics, row: dict, data, n: int, seed: int) -> float:
    """The FID of ``n`` samples of ``row["generator"]`` (``row["model"]`` names it)."""
    samples, _ = timed_samples(row["generator"], n, seed, row["model"])
    return fid(extractor, test, samples, data)
