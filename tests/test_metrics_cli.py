"""`dgm evaluate --real A --fake B`: two .npz files or PNG folders, the digit classifier by default for 28x28 grey."""
import json

import numpy as np
import pytest

from dgm.cli import main


def blobs(n: int, seed: int, shift: int = 0) -> np.ndarray:
    """28x28 uint8 images: a bright square at a random place."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, (row, col) in enumerate(rng.integers(4, 16, size=(n, 2))):
        images[i, row + shift:row + shift + 8, col:col + 8] = 255
    return images


def test_real_fake_npz_files_with_the_digit_classifier(tmp_path, capsys):
    np.savez(tmp_path / "real.npz", images=blobs(40, 0))
    np.savez(tmp_path / "same.npz", images=blobs(40, 0).astype(np.float32)[:, None] / 255)  # (N, C, H, W) floats
    np.savez(tmp_path / "other.npz", images=np.random.default_rng(1).integers(0, 256, (40, 28, 28), np.uint8))
    assert main(["evaluate", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "same.npz"),
                 "--metrics", "fid,kid,is,pr,dc"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["features"] == "digits" and same["n_real"] == same["n_fake"] == 40
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["precision"] == same["coverage"] == 1.0
    assert 1 <= same["is"] <= 10
    assert main(["evaluate", "--real", str(tmp_path / "real.npz"), "--fake", str(tmp_path / "other.npz")]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["fid"] > 0.01 and other["kid"] > 0 and "is" in other


def test_png_folders(tmp_path, capsys):
    from PIL import Image
    for name, seed in (("real", 2), ("fake", 3)):
        (tmp_path / name).mkdir()
        for i, image in enumerate(blobs(12, seed)):
            Image.fromarray(image).save(tmp_path / name / f"{i:03d}.png")
    assert main(["evaluate", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--metrics", "fid,pr"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"features", "n_real", "n_fake", "fid", "precision", "recall"} and result["n_real"] == 12


@pytest.mark.parametrize("arguments, message", [
    (["--real", "a.npz"], "give a run folder, or --real and --fake"),
    (["--real", "missing.npz", "--fake", "missing.npz"], "does not exist"),
    (["--real", "a.txt", "--fake", "b.txt"], "folder of .png images or a .npz file"),
])
def test_bad_input(arguments, message, capsys):
    assert main(["evaluate", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_unknown_metric(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", images=blobs(5, 0))
    assert main(["evaluate", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "a.npz"),
                 "--metrics", "fid,bogus"]) == 2
    assert "unknown metrics" in capsys.readouterr().err
