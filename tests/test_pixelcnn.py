"""PixelCNN: the homework's masks, exact normalisation, causality with colour ordering, blind spot, sampling."""
import pytest
import torch

import dgm
from ar_checks import dependency_violations, total_probability
from dgm.distributions import CategoricalPixels
from dgm.models.autoregressive.tools import (mask_lower_half, receptive_field, save_autocomplete,
                                             save_receptive_field)
from dgm.nn.masked_conv import CausalLayerNorm, MaskedConv2d, causal_mask

SPACES = [((1, 2, 2), 2), ((1, 1, 3), 4), ((3, 1, 2), 2), ((3, 1, 1), 4)]


def _pixelcnn(shape, levels, **options):
    torch.manual_seed(0)
    options = {"filters": 6, "layers": 2, "kernel_size": 3} | options
    return dgm.create("pixelcnn", shape=shape, levels=levels, **options).double()


@pytest.mark.parametrize("mask_type, centre", [("A", 0.0), ("B", 1.0)])
def test_homework_mask_test(mask_type, centre):
    conv = MaskedConv2d(1, 8, 5, mask_type)
    assert (conv.mask[:, :, 2, 2] == centre).all()
    assert (conv.mask[:, :, :2] == 1).all() and (conv.mask[:, :, 2, :2] == 1).all()
    assert (conv.mask[:, :, 2, 3:] == 0).all()
    assert conv.weight.shape == conv.mask.shape == (8, 1, 3, 5)  # the rows below the centre, all masked, are dropped
    assert conv(torch.zeros(2, 1, 7, 9)).shape == (2, 8, 7, 9)


def test_masked_convolution_equals_a_full_convolution_with_the_masked_kernel():
    torch.manual_seed(0)
    conv = MaskedConv2d(6, 9, 5, "B", image_channels=3)
    full = torch.zeros(9, 6, 5, 5)
    full[:, :, :3] = conv.weight * conv.mask
    x = torch.randn(2, 6, 7, 8)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, full, conv.bias, padding=2))


def test_colour_masks_order_r_g_b_at_the_centre():
    for mask_type, allowed in [("A", lambda o, i: o % 3 > i % 3), ("B", lambda o, i: o % 3 >= i % 3)]:
        mask = causal_mask(6, 9, (3, 3), (1, 1), mask_type, image_channels=3)
        expected = torch.tensor([[float(allowed(o, i)) for i in range(6)] for o in range(9)])
        assert torch.equal(mask[:, :, 1, 1], expected)
        assert (mask[:, :, 0] == 1).all() and (mask[:, :, 1, 0] == 1).all() and (mask[:, :, 2] == 0).all()


def test_mask_and_layer_norm_errors():
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 2, 3, "C")
    with pytest.raises(ValueError, match="centre"):
        MaskedConv2d(1, 2, 3, "A", centre=(3, 0))
    with pytest.raises(ValueError, match="multiple"):
        CausalLayerNorm(8, image_channels=3)


def test_layer_norm_normalises_each_colour_group():
    norm = CausalLayerNorm(30, image_channels=3)
    out = norm(torch.randn(2, 30, 4, 4) * 5 + 3).view(2, 10, 3, 4, 4)
    torch.testing.assert_close(out.mean(1), torch.zeros(2, 3, 4, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(1, unbiased=False), torch.ones(2, 3, 4, 4), atol=1e-3, rtol=0)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(CausalLayerNorm(4)(x), torch.nn.functional.layer_norm(
        x.permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2))


@pytest.mark.parametrize("shape, levels", SPACES)
@pytest.mark.parametrize("layer_norm", [True, False])
def test_probabilities_of_all_images_sum_to_one(shape, levels, layer_norm):
    model = _pixelcnn(shape, levels, layer_norm=layer_norm)
    assert total_probability(model, shape, levels) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shape, levels", [((1, 4, 5), 2), ((3, 4, 4), 3)])
def test_no_parameter_depends_on_a_later_pixel_or_channel(shape, levels):
    model = _pixelcnn(shape, levels, filters=6, layers=3)
    x = torch.randint(0, levels, (1, *shape)).double()
    assert len(dependency_violations(model, x)) == 0


def test_perturbing_a_pixel_leaves_earlier_conditionals_unchanged():
    model = _pixelcnn((3, 4, 4), 4, layers=3)
    x = torch.randint(0, 4, (1, 3, 4, 4)).double()
    changed = x.clone()
    changed[0, 1, 2, 1] = (x[0, 1, 2, 1] + 1) % 4  # the G value of pixel (2, 1)
    logits = CategoricalPixels(3, 4).logits
    before, after = logits(model.conditionals(x))[0], logits(model.conditionals(changed))[0]  # (levels, C, H, W)
    flat_before, flat_after = before.flatten(2), after.flatten(2)
    position = 2 * 4 + 1
    torch.testing.assert_close(flat_before[:, :, :position], flat_after[:, :, :position], rtol=0, atol=0)
    torch.testing.assert_close(before[:, :2, 2, 1], after[:, :2, 2, 1], rtol=0, atol=0)  # R and G of the pixel
    assert not torch.equal(before[:, 2, 2, 1], after[:, 2, 2, 1])  # B sees G


def test_receptive_field_has_the_blind_spot():
    model = _pixelcnn((1, 7, 7), 2, filters=8, layers=3)
    field = receptive_field(model, (5, 3))
    assert field[4, 3] > 0 and field[5, 2] > 0 and field[3, 5] > 0
    assert field[4, 5] == 0  # above and to the right, within the kernels' reach, yet never seen: the blind spot
    assert (field[5, 3:] == 0).all() and (field[6:] == 0).all()


def test_sampling_follows_the_data_convention_and_autocomplete_keeps_known_values():
    model = _pixelcnn((3, 3, 4), 4)
    samples = model.sample(5)
    assert samples.shape == (5, 3, 3, 4) and torch.equal(samples, samples.round())
    assert samples.min() >= 0 and samples.max() <= 3
    images = torch.randint(0, 4, (3, 3, 3, 4)).double()
    masked = mask_lower_half(images)
    completed = model.autocomplete(masked)
    assert torch.equal(completed[:, :, :1], images[:, :, :1]) and (completed >= 0).all()


@pytest.mark.parametrize("shape, levels, layer_norm", [((3, 5, 4), 4, True), ((1, 6, 5), 2, False)])
def test_cached_sampling_draws_the_naive_samples(shape, levels, layer_norm):
    model = _pixelcnn(shape, levels, layers=3, kernel_size=5, layer_norm=layer_norm)
    torch.manual_seed(3)
    cached = model.sample(5)
    torch.manual_seed(3)
    assert torch.equal(cached, model.sample(5, naive=True))
    images = torch.randint(0, levels, (4, *shape)).double()
    masked = mask_lower_half(images)
    masked[1, 0, 0, 2] = -1
    torch.manual_seed(4)
    completed = model.autocomplete(masked)
    torch.manual_seed(4)
    assert torch.equal(completed, model.autocomplete(masked, naive=True))


def test_sampling_matches_the_model_distribution():
    """Frequencies of 4000 samples of a 1x1x3 image with 2 levels against the exact probabilities."""
    model = _pixelcnn((1, 1, 3), 2)
    torch.manual_seed(1)
    samples = model.sample(4000)
    codes = (samples.view(-1, 3) * torch.tensor([4.0, 2.0, 1.0], dtype=samples.dtype)).sum(1).long()
    frequencies = torch.bincount(codes, minlength=8).double() / 4000
    cells = torch.tensor([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=torch.float64)
    probabilities = model.log_prob(cells.view(8, 1, 1, 3)).exp()
    assert (frequencies - probabilities).abs().max() < 0.03


def test_bad_input_is_refused():
    model = _pixelcnn((1, 2, 2), 2)
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(1, 1, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="0..1"):
        model.log_prob(torch.full((1, 1, 2, 2), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="not class-conditional"):
        model.log_prob(torch.zeros(1, 1, 2, 2, dtype=torch.float64), labels=torch.zeros(1))
    with pytest.raises(ValueError, match="levels"):
        dgm.create("pixelcnn", shape=(1, 2, 2))
    with pytest.raises(ValueError, match="multiple"):
        dgm.create("pixelcnn", shape=(3, 2, 2), levels=2, filters=8)
    with pytest.raises(ValueError, match="channels, height, width"):
        dgm.create("pixelcnn", shape=(4,), levels=2)
    with pytest.raises(ValueError, match="-1 entries"):
        model.autocomplete(torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64))


def test_homework_tools_write_pictures(tmp_path):
    model = _pixelcnn((1, 6, 6), 2)
    assert save_receptive_field(model, tmp_path / "field.png").read_bytes()[:4] == b"\x89PNG"
    images = torch.randint(0, 2, (3, 1, 6, 6)).double()
    assert save_autocomplete(model, images, tmp_path / "complete.png", completions=2).exists()


@pytest.mark.slow
def test_the_recipe_reaches_the_course_assert_on_binary_mnist(tmp_path):
    """Homework 1's assert, test NLL < 0.10 nats per pixel, after the recipe's 5 minutes of training (about 8
    minutes in all with the evaluations)."""
    from dgm.data import load
    from dgm.metrics.likelihood import log_likelihoods
    from dgm.recipes import load_recipe
    from dgm.training import fit, seed_everything

    recipe, data = load_recipe("pixelcnn-mnist-binary"), load("mnist-binary")
    seed_everything(0)
    model = dgm.create("pixelcnn", data=data, **recipe["model_options"])
    run = fit(model, data, tmp_path / "run", progress=False, **recipe["train"])
    assert -log_likelihoods(run.model, data.test).mean() / data.dim < 0.10
