"""Sample quality in one streaming API: FID, KID, Inception Score, precision/recall, density/coverage and, for 2D
mixtures of Gaussians, mode coverage.

    quality = SampleQuality(DigitFeatures(), metrics=("fid", "kid", "is", "pr", "dc"))
    for batch in real_batches:
        quality.update(batch, real=True)      # pixels 0..255, or vectors for RawFeatures
    for batch in generated_batches:
        quality.update(batch, real=False)
    quality.compute()                         # {"fid": ..., "kid": ..., "kid_std": ..., "is": ..., ...}

FID needs only running means and covariances (:class:`~dgm.metrics.frechet.GaussianStatistics`), so it sees every
sample; KID and the k-NN metrics keep the first ``max_features`` feature vectors of each side. The real side can be
filled from a cache of reference features (:func:`reference_features`), computed once per data set, split, sample
count and feature extractor and stored in ``$DGM_CACHE`` (default ``~/.cache/dgm``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from dgm.checkpoint import CheckpointError, atomic_write, read_weights
from dgm.core import check_integer, sample_labels
from dgm.metrics.features import (DigitFeatures, FeatureExtractor, InceptionFeatures, RawFeatures, data_pixels,
                                  to_pixels)
from dgm.metrics.frechet import GaussianStatistics
from dgm.metrics.inception_score import inception_score
from dgm.metrics.kernel import kernel_inception_distance
from dgm.metrics.manifold import manifold_metrics
from dgm.metrics.modes import mode_metrics

METRICS = ("fid", "kid", "is", "pr", "dc", "modes")
BANKED = ("kid", "pr", "dc", "modes")  # metrics that need the feature vectors themselves


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"fid,kid"`` → ``("fid", "kid")``, checked against :data:`METRICS`."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metrics {unknown or text!r}; choose from {', '.join(METRICS)}")
    return names


class SampleQuality:
    """Accumulates features of real and generated samples batch by batch; :meth:`compute` returns the metrics.

    ``modes=(centres, std)`` describes a mixture of isotropic Gaussians for the ``modes`` metric (raw 2D data).
    ``pr_k`` and ``dc_k`` are the neighbour counts of precision/recall (3, Kynkäänniemi et al.) and of
    density/coverage (5, Naeem et al.)."""

    def __init__(self, extractor: FeatureExtractor, metrics=("fid", "kid", "pr", "dc"), max_features: int = 10000,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10, pr_k: int = 3,
                 dc_k: int = 5, modes: tuple[Tensor, float] | None = None, seed: int = 0):
        unknown = [name for name in metrics if name not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}")
        if "is" in metrics and not extractor.has_classifier:
            raise ValueError(f"the Inception Score needs a classifier; the {extractor.name} features have none "
                             f"(use the digit classifier, or Inception with pytorch-fid's weights file)")
        if "modes" in metrics and modes is None:
            raise ValueError("the modes metric needs modes=(centres, std) of a Gaussian mixture")
        self.extractor, self.metrics, self.modes = extractor, tuple(metrics), modes
        self.max_features = check_integer(max_features, "max_features", 2)
        self.options = {"kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "is_splits": is_splits,
                        "pr_k": pr_k, "dc_k": dc_k, "seed": seed}
        self.statistics = {side: GaussianStatistics(extractor.dim) for side in ("real", "fake")}
        self.banks: dict[str, list[Tensor]] = {"real": [], "fake": []}
        self.probabilities: list[Tensor] = []

    def update(self, samples: Tensor, real: bool) -> "SampleQuality":
        """Add a batch of real or generated samples (pixels 0..255, or vectors for raw features)."""
        return self.update_features(self.extractor.features(samples), real)

    def update_features(self, features: Tensor, real: bool) -> "SampleQuality":
        """Add features computed elsewhere (e.g. cached reference features)."""
        side = "real" if real else "fake"
        self.statistics[side].update(features)
        kept = sum(map(len, self.banks[side]))
        if any(name in self.metrics for name in BANKED) and kept < self.max_features:
            self.banks[side].append(features[:self.max_features - kept].float())
        if "is" in self.metrics and not real:
            self.probabilities.append(self.extractor.probabilities(features))
        return self

    def _bank(self, side: str) -> Tensor:
        if not self.banks[side]:
            raise ValueError(f"no {side} samples were given")
        return torch.cat(self.banks[side])

    def compute(self) -> dict:
        """The requested metrics, with the feature name and the sample counts."""
        options, result = self.options, {"features": self.extractor.name,
                                         "n_real": self.statistics["real"].count,
                                         "n_fake": self.statistics["fake"].count}
        if "fid" in self.metrics:
            result["fid"] = self.statistics["real"].distance(self.statistics["fake"])
        if "kid" in self.metrics:
            result |= kernel_inception_distance(self._bank("real"), self._bank("fake"), options["kid_subsets"],
                                                options["kid_subset_size"], seed=options["seed"])
        if "is" in self.metrics:
            result |= inception_score(torch.cat(self.probabilities), splits=options["is_splits"])
        if "pr" in self.metrics:
            pr = manifold_metrics(self._bank("real"), self._bank("fake"), k=options["pr_k"])
            result |= {"precision": pr["precision"], "recall": pr["recall"]}
        if "dc" in self.metrics:
            dc = manifold_metrics(self._bank("real"), self._bank("fake"), k=options["dc_k"])
            result |= {"density": dc["density"], "coverage": dc["coverage"]}
        if "modes" in self.metrics:
            centres, std = self.modes
            result |= mode_metrics(self._bank("fake"), centres, std)
        return result


# -- choices by data set, reference features --------------------------------------------------------------------

def cache_dir() -> Path:
    """Where reference features are cached: ``$DGM_CACHE``, else ``~/.cache/dgm``."""
    return Path(os.environ.get("DGM_CACHE") or Path.home() / ".cache" / "dgm")


FEATURES = ("auto", "digits", "inception", "raw")


def feature_kind(shape: tuple[int, ...], features: str = "auto", inception_weights=None) -> str:
    """``features``, or for ``"auto"`` the kind that suits data of ``shape`` (see :func:`choose_extractor`)."""
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if features != "auto":
        return features
    if len(shape) != 3:
        return "raw"
    return "digits" if tuple(shape) == (1, 28, 28) and inception_weights is None else "inception"


def choose_extractor(shape: tuple[int, ...], features: str = "auto", inception_weights: str | Path | None = None,
                     resize: str = "bilinear") -> FeatureExtractor:
    """The feature extractor named by ``features``; ``"auto"`` picks the digit classifier for 28x28 grey images
    (unless Inception weights are given), Inception for other images and the raw vectors for vector data."""
    features = feature_kind(shape, features, inception_weights)
    if features == "digits":
        if tuple(shape) != (1, 28, 28):
            raise ValueError(f"the digit classifier takes 28x28 grey images, got samples of shape {tuple(shape)}")
        return DigitFeatures()
    if features == "inception":
        if len(shape) != 3:
            raise ValueError(f"Inception features need images (C, H, W), got samples of shape {tuple(shape)}")
        return InceptionFeatures(weights=inception_weights, resize=resize)
    if len(shape) != 1:
        raise ValueError(f"raw features need vectors, got samples of shape {tuple(shape)}")
    return RawFeatures(dim=shape[0])


def mixture_modes(data) -> tuple[Tensor, float] | None:
    """``(centres, std)`` of a data set generated by an isotropic Gaussian mixture (8/25 Gaussians), else None."""
    distribution = data.distribution
    if hasattr(distribution, "centres") and isinstance(getattr(distribution, "std", None), float):
        return distribution.centres, distribution.std
    return None


def default_metrics(extractor: FeatureExtractor, modes) -> tuple[str, ...]:
    metrics = ("fid", "kid", "pr", "dc")
    return metrics + ("is",) * extractor.has_classifier + ("modes",) * (modes is not None)


def as_extractor_input(x: Tensor, data) -> Tensor:
    """Data-convention samples → what the extractor takes: pixels 0..255 for images, vectors otherwise."""
    if not data.is_image:
        return x
    return data_pixels(x.clamp(0, data.levels - 1), data.levels)


def reference_features(data, extractor: FeatureExtractor, split: str = "test", n: int | None = None,
                       progress: bool = False) -> Tensor:
    """Features of the first ``n`` examples of ``data``'s ``split``, computed once and cached on disk (raw
    features, the data themselves, are not cached)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    examples = getattr(data, split)[:n]
    if isinstance(extractor, RawFeatures):
        return extractor.features(examples)
    options = hashlib.sha1(json.dumps(data.options, sort_keys=True).encode()).hexdigest()[:8]
    path = cache_dir() / "reference" / f"{data.name}-{options}-{split}-{len(examples)}-{extractor.name}.safetensors"
    try:
        return read_weights(path)["features"]
    except (CheckpointError, KeyError):
        pass
    features = extractor.features(as_extractor_input(examples, data), progress=progress).contiguous()
    atomic_write(path, lambda temporary: save_file({"features": features}, temporary))
    return features


def generated_samples(model, n: int, batch_size: int, progress: bool = False) -> Tensor:
    """``n`` samples of ``model``, drawn in batches; a class-conditional model draws every class in turn."""
    check_integer(n, "the number of samples", 2)
    sizes = [batch_size] * (n // batch_size) + [n % batch_size] * (n % batch_size > 0)
    with torch.no_grad():
        return torch.cat([model.sample(size, **sample_labels(model, size)).cpu()
                          for size in tqdm(sizes, desc="sampling", disable=not progress)])


def model_quality(model, data, metrics=None, n: int = 1000, batch_size: int = 500, features: str = "auto",
                  inception_weights: str | Path | None = None, resize: str = "bilinear",
                  progress: bool = False) -> dict:
    """Sample-quality metrics of ``n`` samples of ``model`` against the first ``n`` test examples of ``data``,
    with the feature extractor that suits the data (:func:`choose_extractor`); ``metrics=None`` computes those
    that apply (:func:`default_metrics`)."""
    extractor = choose_extractor(data.shape, features, inception_weights, resize)
    modes = mixture_modes(data) if isinstance(extractor, RawFeatures) else None
    metrics = default_metrics(extractor, modes) if metrics is None else metrics
    quality = SampleQuality(extractor, metrics, max_features=n, modes=modes)
    quality.update_features(reference_features(data, extractor, "test", n, progress=progress), real=True)
    samples = generated_samples(model, n, batch_size, progress=progress)
    quality.update_features(extractor.features(as_extractor_input(samples, data), progress=progress), real=False)
    return quality.compute()


# -- two sets of image files --------------------------------------------------------------------------------------

def read_image_set(path: str | Path) -> Tensor:
    """Pixels ``(N, C, H, W)`` (0..255) of a folder of PNG images (grey or RGB, one size) or of a ``.npz`` file
    holding one array of images ``(N, H, W)`` or ``(N, C, H, W)``, uint8 or floats in [0, 1]."""
    path = Path(path)
    if path.is_dir():
        from PIL import Image
        files = sorted(path.glob("*.png"))
        if not files:
            raise ValueError(f"{path} holds no .png images")
        images = []
        for file in files:
            with Image.open(file) as image:
                images.append(np.asarray(image if image.mode == "L" else image.convert("RGB")))
        if len({image.shape for image in images}) > 1:
            raise ValueError(f"the images of {path} differ in size or channels; give images of one shape")
        array = np.stack(images)
        return to_pixels(array if array.ndim == 3 else array.transpose(0, 3, 1, 2))
    if path.suffix != ".npz":
        raise ValueError(f"{path} must be a folder of .png images or a .npz file")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with np.load(path, allow_pickle=False) as arrays:
        if len(arrays.files) != 1:
            raise ValueError(f"{path} must hold exactly one array of images, it holds {arrays.files}")
        return to_pixels(arrays[arrays.files[0]])


def compare_image_sets(real: str | Path, fake: str | Path, metrics=None, features: str = "auto",
                       inception_weights: str | Path | None = None, resize: str = "bilinear",
                       progress: bool = False) -> dict:
    """Sample-quality metrics of the images at ``fake`` against those at ``real`` (see :func:`read_image_set`)."""
    real_pixels, fake_pixels = read_image_set(real), read_image_set(fake)
    if real_pixels.shape[1:] != fake_pixels.shape[1:]:
        raise ValueError(f"real and fake images differ in shape: {tuple(real_pixels.shape[1:])} and "
                         f"{tuple(fake_pixels.shape[1:])}")
    extractor = choose_extractor(tuple(real_pixels.shape[1:]), features, inception_weights, resize)
    metrics = default_metrics(extractor, None) if metrics is None else metrics
    quality = SampleQuality(extractor, metrics, max_features=max(len(real_pixels), len(fake_pixels)))
    quality.update_features(extractor.features(real_pixels, progress=progress), real=True)
    quality.update_features(extractor.features(fake_pixels, progress=progress), real=False)
    return quality.compute()
