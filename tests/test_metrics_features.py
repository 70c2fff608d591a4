"""Feature extractors: our InceptionV3 against the shipped TorchScript network, image conversion, the digit
classifier, the cache of reference features, and the streaming API on a model."""
import numpy as np
import pytest
import torch

from dgm.metrics.classifier import WEIGHTS, DigitClassifier
from dgm.metrics.features import (RESIZERS, DigitFeatures, InceptionFeatures, RawFeatures, clean_resize,
                                  inception_input, load_inception, load_torchscript_inception, to_pixels)
from dgm.metrics.quality import SampleQuality, choose_extractor, model_quality, reference_features
from dgm.nn.inception import from_torchscript_state

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def networks():
    reference = load_torchscript_inception()
    return reference, from_torchscript_state(reference.state_dict())


@torch.inference_mode()
def test_every_block_matches_the_torchscript_network(networks):
    """Fast variant: each kind of block on a small input, ours unchanged and folded, against the jit layers."""
    reference, ours = networks
    layers = reference.net.layers
    folded = from_torchscript_state(reference.state_dict()).folded()
    generator = torch.Generator().manual_seed(0)
    pairs = [("conv", "Conv2d_1a_3x3", (1, 3, 35, 35)), ("mixed", "Mixed_5b", (1, 192, 9, 9)),
             ("mixed_3", "Mixed_6a", (1, 288, 9, 9)), ("mixed_4", "Mixed_6b", (1, 768, 9, 9)),
             ("mixed_8", "Mixed_7a", (1, 768, 9, 9)), ("mixed_9", "Mixed_7b", (1, 1280, 5, 5)),
             ("mixed_10", "Mixed_7c", (1, 2048, 5, 5))]
    for theirs, mine, shape in pairs:
        x = torch.rand(shape, generator=generator) * 2
        expected = getattr(layers, theirs)(x)
        assert (getattr(ours, mine)(x) - expected).abs().max() < TOLERANCE, mine
        assert (getattr(folded, mine)(x) - expected).abs().max() < TOLERANCE, mine


@pytest.mark.slow
@torch.inference_mode()
def test_whole_network_matches_the_torchscript_network(networks):
    reference, _ = networks
    pixels = torch.randint(0, 256, (2, 1, 28, 28), generator=torch.Generator().manual_seed(1)).float()
    expected = reference(inception_input(pixels))
    for fast in (False, True):
        extractor = InceptionFeatures(fast=fast)
        features = extractor.features(pixels)
        assert features.shape == (2, 2048)
        assert (features - expected).abs().max() < TOLERANCE
    assert not extractor.has_classifier
    with pytest.raises(ValueError, match="no classifier"):
        extractor.probabilities(features)


def test_pytorch_fid_weights_file_loads_with_its_classifier(tmp_path, networks):
    _, ours = networks
    state = ours.state_dict() | {"fc.weight": torch.randn(1008, 2048) * 0.01, "fc.bias": torch.zeros(1008)}
    torch.save(state, tmp_path / "pt_inception.pth")
    extractor = InceptionFeatures(weights=tmp_path / "pt_inception.pth", fast=False)
    assert extractor.has_classifier and extractor.name == "inception-pt_inception-bilinear"
    probabilities = extractor.probabilities(torch.rand(3, 2048))
    assert probabilities.shape == (3, 1008) and torch.allclose(probabilities.sum(1), torch.ones(3))
    torch.save({"wrong": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="pytorch-fid"):
        load_inception(tmp_path / "other.pth")


def test_images_become_pixels_and_inception_input():
    as_uint8 = torch.tensor([[[0, 255], [128, 64]]], dtype=torch.uint8)
    pixels = to_pixels(as_uint8)
    assert pixels.shape == (1, 1, 2, 2) and pixels.dtype == torch.float32 and pixels.max() == 255
    assert torch.equal(to_pixels(as_uint8.float().numpy() / 255), pixels)
    for bad in (torch.full((1, 2, 2), 2.0), torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.int64)):
        with pytest.raises(ValueError):
            to_pixels(bad)
    full = torch.full((2, 1, 299, 299), 192.0)
    assert torch.equal(inception_input(full), torch.full((2, 3, 299, 299), 0.5))  # (192 − 128) / 128, no resize
    small = inception_input(torch.rand(1, 3, 32, 32) * 255, resize="clean")
    assert small.shape == (1, 3, 299, 299)
    grey = torch.rand(2, 1, 28, 28) * 255
    assert torch.equal(inception_input(grey, resize="clean"), inception_input(grey.expand(-1, 3, -1, -1), "clean"))
    with pytest.raises(ValueError, match="resize"):
        inception_input(full, resize="nearest")


def test_clean_resize_properties():
    """PIL's bicubic kernel (a = −0.5) has weights summing to 1 and reproduces linear functions: a constant image
    stays constant and, away from the borders (where PIL renormalises a cut-off window), a ramp stays the same ramp
    in the output's pixel-centre coordinates, upscaling and (with the antialiasing kernel) downscaling. Overshoots
    at sharp edges are clipped to [0, 255]; channels are resized independently."""
    assert torch.allclose(clean_resize(torch.full((2, 3, 28, 28), 77.0)), torch.full((2, 3, 299, 299), 77.0),
                          atol=1e-4)
    for side in (28, 600):
        centres = torch.arange(side, dtype=torch.float32)
        ramp = (centres * (200 / side) + 20).expand(side, side)  # f(row, column) = α column + β
        resized = clean_resize(ramp[None, None])[0, 0]
        columns = (torch.arange(299) + 0.5) * (side / 299) - 0.5  # output pixel centres in input coordinates
        expected = (columns * (200 / side) + 20).expand(299, 299)
        interior = slice(25, -25)
        assert (resized - expected)[:, interior].abs().max() < 1e-3
    edges = torch.zeros(1, 1, 28, 28)
    edges[..., ::4, :] = 255  # stripes: bicubic overshoots past 0 and 255 next to each edge
    resized = clean_resize(edges)
    assert resized.shape == (1, 1, 299, 299) and resized.min() == 0 and resized.max() == 255
    images = torch.rand(2, 3, 20, 24) * 255
    by_channel = torch.cat([clean_resize(images[:, [channel]]) for channel in range(3)], 1)
    assert torch.equal(clean_resize(images), by_channel)


def test_clean_resize_equals_clean_fid():
    """The same numbers as clean-fid's own resizer ("clean" mode) on colour images, up- and downscaled."""
    resize = pytest.importorskip("cleanfid.resize")
    theirs = resize.make_resizer("PIL", False, "bicubic", (299, 299))
    generator = torch.Generator().manual_seed(7)
    for side in (28, 64, 512):
        images = torch.randint(0, 256, (2, side, side, 3), generator=generator, dtype=torch.uint8)
        expected = np.stack([theirs(image) for image in images.numpy()])  # (N, 299, 299, 3)
        ours = clean_resize(images.permute(0, 3, 1, 2).float()).permute(0, 2, 3, 1).numpy()
        assert np.abs(ours - expected).max() == 0


def test_cli_offers_every_resizer():
    from dgm.cli import _parser
    for resize in RESIZERS:
        assert _parser().parse_args(["evaluate", "--real", "a.npz", "--resize", resize]).resize == resize


def test_digit_classifier_is_shipped():
    from safetensors import safe_open
    from importlib import resources
    with resources.as_file(resources.files("dgm.metrics") / WEIGHTS) as path, safe_open(path, "pt") as file:
        assert float(file.metadata()["test_accuracy"]) >= 0.99  # as measured by scripts/train_digit_classifier.py
    extractor = DigitFeatures()
    features = extractor.features(torch.zeros(3, 1, 28, 28))
    assert features.shape == (3, 128)
    assert torch.allclose(extractor.probabilities(features).sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="28, 28"):
        DigitClassifier().features(torch.zeros(1, 3, 28, 28))


@pytest.mark.slow
def test_digit_classifier_accuracy_on_the_mnist_test_set():
    from dgm.data.images import mnist
    data = mnist()
    extractor = DigitFeatures()
    predictions = extractor.probabilities(extractor.features(data.test)).argmax(1)
    assert (predictions == data.test_labels).double().mean() >= 0.99


def test_extractor_choice_follows_the_data():
    assert isinstance(choose_extractor((1, 28, 28)), DigitFeatures)
    assert isinstance(choose_extractor((2,)), RawFeatures)
    with pytest.raises(ValueError, match="28x28"):
        choose_extractor((3, 32, 32), features="digits")
    with pytest.raises(ValueError, match="features must be"):
        choose_extractor((2,), features="clip")


def test_reference_features_are_cached(tmp_path, monkeypatch):
    from dgm.data.base import Data
    monkeypatch.setenv("DGM_CACHE", str(tmp_path))
    images = torch.randint(0, 2, (30, 1, 28, 28)).float()
    data = Data("tiny-binary", images, images, levels=2)
    first = reference_features(data, DigitFeatures(), "test", 20)
    cached = list((tmp_path / "reference").glob("tiny-binary-*-test-20-digits.safetensors"))
    assert len(cached) == 1 and first.shape == (20, 128)
    assert torch.equal(DigitFeatures().features(images[:20] * 255), first)  # binary data as pixels 0 / 255
    cached[0].write_bytes(b"")  # a broken cache file is recomputed
    assert torch.equal(reference_features(data, DigitFeatures(), "test", 20), first)


def test_model_quality_on_eight_gaussians(tmp_path, monkeypatch):
    """The streaming API end to end: a Gaussian model of the 8-Gaussian data has low precision, covers few modes
    with high-quality samples; the data itself scores near perfectly."""
    from dgm.data.toy2d import distribution, toy_data
    monkeypatch.setenv("DGM_CACHE", str(tmp_path))
    data = toy_data("8gaussians-hw5", distribution("8gaussians-hw5"), n_train=100, n_test=2000)
    torch.manual_seed(0)

    class StandardNormal:  # model_quality needs only sample(n)
        def sample(self, n):
            return torch.randn(n, 2)

    model = StandardNormal()
    result = model_quality(model, data, n=500)
    assert set(result) >= {"fid", "kid", "precision", "recall", "density", "coverage", "modes_covered"}
    assert result["modes"] == 8 and result["high_quality"] < 0.05 and result["precision"] < 0.2
    assert not list(tmp_path.iterdir())  # raw features (the data themselves) are not cached
    quality = SampleQuality(RawFeatures(2), ("fid", "modes", "pr"), modes=(data.distribution.centres,
                                                                             data.distribution.std))
    quality.update(data.test[:1000], real=True).update(data.test[1000:], real=False)
    same = quality.compute()
    assert same["modes_covered"] == 8 and same["high_quality"] > 0.97 and same["fid"] < 0.05
    with pytest.raises(ValueError, match="classifier"):
        SampleQuality(RawFeatures(2), ("is",))
