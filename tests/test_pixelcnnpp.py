"""PixelCNN++: exact normalisation on tiny spaces, causality through both streams and every resolution, sampling."""
import pytest
import torch

import dgm
from ar_checks import dependency_violations, total_probability
from dgm.distributions import CategoricalPixels, DiscretizedLogisticMixture


def pixelcnnpp(shape, levels, **options):
    torch.manual_seed(0)
    arguments = dict(filters=6, blocks=1, resolutions=3, components=2) | options
    return dgm.create("pixelcnn++", shape=shape, levels=levels, **arguments).double().eval()


@pytest.mark.parametrize("shape, levels, output", [((1, 2, 2), 2, None), ((1, 2, 2), 2, "logistic"),
                                                   ((1, 1, 3), 4, None), ((3, 1, 2), 2, None),
                                                   ((3, 1, 1), 4, None)])
def test_probabilities_of_all_images_sum_to_one(shape, levels, output):
    model = pixelcnnpp(shape, levels, output=output)
    assert total_probability(model, shape, levels) == pytest.approx(1.0, abs=1e-5)


def test_output_rule():
    assert isinstance(pixelcnnpp((1, 4, 4), 2).output, CategoricalPixels)
    assert isinstance(pixelcnnpp((1, 4, 4), 256).output, DiscretizedLogisticMixture)
    assert isinstance(pixelcnnpp((3, 4, 4), 2).output, DiscretizedLogisticMixture)
    with pytest.raises(ValueError, match="one channel"):
        pixelcnnpp((3, 4, 4), 2, output="categorical")
    with pytest.raises(ValueError, match="output must be"):
        pixelcnnpp((1, 4, 4), 2, output="gaussian")


@pytest.mark.parametrize("shape, levels, options", [((1, 6, 5), 2, {}), ((3, 4, 4), 4, {"blocks": 2}),
                                                    ((1, 7, 7), 256, {"resolutions": 2, "dropout": 0.5})])
def test_no_parameter_depends_on_the_pixel_itself_or_a_later_one(shape, levels, options):
    model = pixelcnnpp(shape, levels, **options)
    x = torch.randint(0, levels, (1, *shape)).double()
    assert len(dependency_violations(model, x)) == 0


def test_no_blind_spot():
    """The parameters of a pixel depend on every pixel before it, above-right ones included."""
    model = pixelcnnpp((1, 5, 5), 2, resolutions=2)
    x = torch.randint(0, 2, (1, 1, 5, 5)).double()
    jacobian = torch.autograd.functional.jacobian(lambda inputs: model.network(inputs, None, None),
                                                  model.scaled(x))[0, :, 4, 2, 0]  # (P, H, W) at pixel (4, 2)
    seen = jacobian.abs().sum(dim=(0, 1)) > 0
    expected = (torch.arange(25) < 4 * 5 + 2).view(5, 5)
    assert torch.equal(seen, expected)


def test_sampling_matches_the_model_distribution():
    """Frequencies of 4000 colour pixels with 4 levels against the exact joint of the 64 values."""
    model = pixelcnnpp((3, 1, 1), 4)
    torch.manual_seed(1)
    samples = model.sample(4000).view(-1, 3).long()
    frequencies = torch.bincount(samples[:, 0] * 16 + samples[:, 1] * 4 + samples[:, 2], minlength=64) / 4000
    cells = torch.tensor([[k // 16, k // 4 % 4, k % 4] for k in range(64)], dtype=torch.float64)
    probabilities = model.log_prob(cells.view(64, 3, 1, 1)).exp()
    assert (frequencies - probabilities).abs().max() < 0.03


def test_sampling_and_autocomplete_follow_the_data_convention():
    model = pixelcnnpp((3, 3, 4), 16)
    samples = model.sample(3)
    assert samples.shape == (3, 3, 3, 4) and torch.equal(samples, samples.round())
    assert samples.min() >= 0 and samples.max() <= 15
    images = torch.randint(0, 16, (2, 3, 3, 4)).double()
    masked = images.clone()
    masked[:, :, 2:] = -1
    completed = model.autocomplete(masked)
    assert torch.equal(completed[:, :, :2], images[:, :, :2]) and (completed >= 0).all()


def test_dropout_acts_in_training_only_and_bad_options_are_refused():
    model = pixelcnnpp((1, 4, 4), 4, dropout=0.5)
    x = torch.randint(0, 4, (2, 1, 4, 4)).double()
    assert torch.equal(model.log_prob(x), model.log_prob(x))
    model.train()
    assert not torch.equal(model.log_prob(x), model.log_prob(x))
    with pytest.raises(ValueError, match="dropout"):
        pixelcnnpp((1, 4, 4), 4, dropout=1.0)
    with pytest.raises(ValueError, match="resolutions"):
        pixelcnnpp((1, 4, 4), 4, resolutions=0)


@pytest.mark.parametrize("shape, levels", [((3, 5, 4), 4), ((1, 6, 5), 2)])
def test_row_prefix_sampling_draws_the_naive_samples(shape, levels):
    model = pixelcnnpp(shape, levels)
    torch.manual_seed(3)
    fast = model.sample(4)
    torch.manual_seed(3)
    assert torch.equal(fast, model.sample(4, naive=True))
    masked = torch.randint(0, levels, (3, *shape)).double()
    masked[:, :, 3:] = -1
    masked[1, :, 1, 2] = -1
    torch.manual_seed(4)
    completed = model.autocomplete(masked)
    torch.manual_seed(4)
    assert torch.equal(completed, model.autocomplete(masked, naive=True))


def test_conditioning_on_a_class_or_a_vector():
    shape = (1, 2, 2)
    model = pixelcnnpp(shape, 2, n_classes=3, condition_shape=[4])
    z = torch.randn(1, 4, dtype=torch.float64)
    for label in range(3):
        assert total_probability(model, shape, 2, labels=torch.tensor([label]), condition=z) == pytest.approx(1.0)
    x = torch.randint(0, 2, (1, 1, 5, 4)).double()
    big = pixelcnnpp((1, 5, 4), 2, n_classes=3, condition_shape=[4])
    assert len(dependency_violations(big, x, labels=torch.tensor([1]), condition=z)) == 0
    images = torch.randint(0, 2, (2, *shape)).double()
    assert not torch.equal(model.log_prob(images, labels=torch.tensor([0, 0]), condition=z.expand(2, -1)),
                           model.log_prob(images, labels=torch.tensor([1, 1]), condition=z.expand(2, -1)))
    with pytest.raises(ValueError, match="give labels"):
        model.log_prob(images, condition=z.expand(2, -1))


def test_conditioning_on_a_feature_map_at_every_resolution():
    shape = (1, 2, 2)
    model = pixelcnnpp(shape, 2, condition_shape=[3, 2, 2])
    h = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    assert total_probability(model, shape, 2, condition=h) == pytest.approx(1.0, abs=1e-5)
    images = torch.randint(0, 2, (1, *shape)).double().expand(2, -1, -1, -1)
    two_maps = torch.cat([h, torch.randn(1, 3, 2, 2, dtype=torch.float64)])
    log_p = model.log_prob(images, condition=two_maps)
    assert not torch.isclose(log_p[0], log_p[1])
    # 5x4 -> 3x2 -> 2x1: odd sizes, and the coarse levels read averages of the map's last, partial cells
    big = pixelcnnpp((1, 5, 4), 2, condition_shape=[3, 5, 4])
    maps = torch.randn(4, 3, 5, 4, dtype=torch.float64)
    assert len(dependency_violations(big, torch.randint(0, 2, (1, 1, 5, 4)).double(), condition=maps[:1])) == 0
    changed = maps.clone()
    changed[:, :, 4] += 1.0  # the map's last row alone, which the coarsest level averages with no other row
    blank = torch.zeros(4, 1, 5, 4, dtype=torch.float64)
    assert not torch.equal(big.log_prob(blank, condition=maps), big.log_prob(blank, condition=changed))
    torch.manual_seed(3)
    fast = big.sample(4, condition=maps)
    torch.manual_seed(3)
    assert torch.equal(fast, big.sample(4, condition=maps, naive=True))
