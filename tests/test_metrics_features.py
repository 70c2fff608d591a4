"""Feature extractors: our InceptionV3 against the shipped TorchScript network, image conversion, the digit
classifier, the cache of reference features, and the streaming API on a model."""
import numpy as np
import pytest
import torch

from dgm.metrics.classifier import WEIGHTS, DigitClassifier
from dgm.metrics.features import (RESIZERS, DigitFeatures, InceptionFeatures, RawFeatures, clean_resize,
                                  inception_input, load_inception, load_torchscript_inception, to_pixels)
from dgm.metrics.frechet import fit_gaussian
from dgm.metrics.quality import (METRICS, SampleQuality, compare_image_sets, default_metrics, extractor_for,
                                 metric_space, model_quality, parse_metrics, quality_meters,
                                 reference_features)
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


def test_metric_names_carry_their_feature_space():
    """A bare name is the standard metric of papers, on Inception features, whatever the images; a suffix names
    the other feature spaces."""
    assert [metric_space(name) for name in ("fid", "kid", "is", "pr", "dc")] == ["inception"] * 5
    assert [metric_space(name) for name in ("fid-digits", "is-digits", "fid-raw", "modes")] == \
        ["digits", "digits", "raw", "raw"]
    assert set(METRICS) == {"fid", "kid", "is", "pr", "dc", "fid-digits", "kid-digits", "is-digits", "pr-digits",
                            "dc-digits", "fid-raw", "kid-raw", "pr-raw", "dc-raw", "modes"}
    assert parse_metrics(" fid, fid-digits ") == ("fid", "fid-digits")


def test_fid_on_mnist_shaped_images_uses_inception_features():
    """The extractor choice without running the networks: fid → Inception even for 28x28 grey images, fid-digits
    → the digit classifier, fid-raw → the vectors."""
    mnist = (1, 28, 28)
    assert isinstance(extractor_for(metric_space("fid"), mnist), InceptionFeatures)
    assert isinstance(extractor_for(metric_space("fid-digits"), mnist), DigitFeatures)
    assert isinstance(extractor_for(metric_space("fid-raw"), (2,)), RawFeatures)
    meters = quality_meters(mnist, ("fid-digits", "fid", "kid-digits"))
    assert [type(meter.extractor) for meter in meters] == [DigitFeatures, InceptionFeatures]
    assert [meter.metrics for meter in meters] == [("fid-digits", "kid-digits"), ("fid",)]


def test_fid_of_two_mnist_sized_sets_is_the_inception_distance(tmp_path):
    """End to end on 8 + 8 images, nothing mocked: ``fid`` is the Fréchet distance of the TF-FID Inception pool
    features, ``fid-digits`` that of the digit classifier's features, each under its own key."""
    generator = torch.Generator().manual_seed(5)
    real = torch.randint(0, 256, (8, 28, 28), generator=generator, dtype=torch.uint8)
    fake = (real.float() * 0.5).to(torch.uint8)
    np.savez(tmp_path / "real.npz", images=real.numpy())
    np.savez(tmp_path / "fake.npz", images=fake.numpy())
    result = compare_image_sets(tmp_path / "real.npz", tmp_path / "fake.npz", metrics=("fid", "fid-digits"))
    assert result["features"] == {"inception": "inception-tf-bilinear", "digits": "digits"}
    assert set(result) == {"features", "n_real", "n_fake", "fid", "fid-digits"}
    real_pixels, fake_pixels = real[:, None].float(), fake[:, None].float()
    inception, digits = InceptionFeatures(), DigitFeatures()
    assert result["fid"] == pytest.approx(
        fit_gaussian(inception.features(real_pixels)).distance(fit_gaussian(inception.features(fake_pixels))),
        rel=1e-6)
    assert result["fid-digits"] == pytest.approx(
        fit_gaussian(digits.features(real_pixels)).distance(fit_gaussian(digits.features(fake_pixels))), rel=1e-9)
    assert result["fid"] != pytest.approx(result["fid-digits"], rel=0.1)


def test_defaults_are_the_cheap_feature_spaces():
    assert default_metrics((1, 28, 28)) == ("fid-digits", "kid-digits", "pr-digits", "dc-digits", "is-digits")
    assert default_metrics((3, 32, 32)) == ("fid", "kid", "pr", "dc")
    assert default_metrics((3, 32, 32), inception_weights="pt_inception.pth")[-1] == "is"
    assert default_metrics((2,), modes=True) == ("fid-raw", "kid-raw", "pr-raw", "dc-raw", "modes")
    assert default_metrics((1, 256)) == ()  # sequences: no feature space applies


@pytest.mark.parametrize("shape, metrics, options, message", [
    ((1, 28, 28), ("fid", "bogus"), {}, "unknown metrics \\['bogus'\\]; choose from fid, kid, is, pr, dc, fid-digits"),
    ((1, 28, 28), ("fid-inception",), {}, "dc-raw, modes"),
    ((1, 28, 28), (), {}, "no metrics named"),
    ((1, 28, 28), ("fid", "fid"), {}, "named twice"),
    ((1, 28, 28), ("is",), {}, "is-digits"),  # the TF-FID weights have no classifier
    ((1, 28, 28), ("fid-digits",), {"inception_weights": "x.pth"}, "apply to the Inception metrics"),
    ((1, 28, 28), ("fid-digits",), {"resize": "clean"}, "none was asked for"),
    ((3, 32, 32), ("fid-digits",), {}, "28x28 grey"),
    ((2,), ("fid",), {}, "fid-raw"),
    ((1, 28, 28), ("kid-raw",), {}, "data vectors"),
])
def test_requests_are_checked_before_any_network_loads(shape, metrics, options, message):
    with pytest.raises(ValueError, match=message):
        quality_meters(shape, metrics, **options)


def test_sample_quality_refuses_names_of_another_feature_space():
    with pytest.raises(ValueError, match="fid is measured on inception features, not on the digits"):
        SampleQuality(DigitFeatures(), ("fid",))
    with pytest.raises(ValueError, match="unknown metrics"):
        SampleQuality(RawFeatures(2), ("fid-raw", "fid-points"))
    quality = SampleQuality(RawFeatures(2))
    assert quality.metrics == ("fid-raw", "kid-raw", "pr-raw", "dc-raw")


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
    assert set(result) == {"features", "n_real", "n_fake", "fid-raw", "kid-raw", "kid-raw_std", "precision-raw",
                           "recall-raw", "density-raw", "coverage-raw", "modes_covered", "modes", "high_quality",
                           "mode_counts"}
    assert result["features"] == {"raw": "raw"}
    assert result["modes"] == 8 and result["high_quality"] < 0.05 and result["precision-raw"] < 0.2
    assert not list(tmp_path.iterdir())  # raw features (the data themselves) are not cached
    quality = SampleQuality(RawFeatures(2), ("fid-raw", "modes", "pr-raw"), modes=(data.distribution.centres,
                                                                                     data.distribution.std))
    quality.update(data.test[:1000], real=True).update(data.test[1000:], real=False)
    same = quality.compute()
    assert same["modes_covered"] == 8 and same["high_quality"] > 0.97 and same["fid-raw"] < 0.05
    with pytest.raises(ValueError, match="is is measured on inception features"):
        SampleQuality(RawFeatures(2), ("is",))
    with pytest.raises(ValueError, match="fid-raw"):
        model_quality(model, data, metrics=("fid",), n=500)  # the Inception FID needs images
