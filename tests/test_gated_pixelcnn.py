"""Gated PixelCNN: exact normalisation, causality, no blind spot, cached sampling equal to naive sampling."""
import pytest
import torch

import dgm
from ar_checks import dependency_violations, total_probability
from dgm.models.autoregressive.tools import mask_lower_half, receptive_field
from dgm.nn.gated import gate, shift_down


def _gated(shape, levels, **options):
    torch.manual_seed(0)
    options = {"filters": 6, "layers": 2, "kernel_size": 3} | options
    return dgm.create("gated-pixelcnn", shape=shape, levels=levels, **options).double()


def test_gate_and_shift():
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(gate(x), torch.tanh(x[:, :2]) * torch.sigmoid(x[:, 2:]))
    shifted = shift_down(x)
    assert (shifted[:, :, 0] == 0).all() and torch.equal(shifted[:, :, 1:], x[:, :, :-1])


@pytest.mark.parametrize("shape, levels", [((1, 2, 2), 2), ((1, 1, 3), 4), ((3, 1, 2), 2), ((3, 1, 1), 4)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    model = _gated(shape, levels, kernel_size=5)
    assert total_probability(model, shape, levels) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shape, levels", [((1, 5, 5), 2), ((3, 4, 4), 3)])
def test_no_parameter_depends_on_a_later_pixel_or_channel(shape, levels):
    model = _gated(shape, levels, layers=3)
    x = torch.randint(0, levels, (1, *shape)).double()
    assert len(dependency_violations(model, x)) == 0


def test_receptive_field_has_no_blind_spot():
    """With kernel 3 and 3 layers the field of (5, 3) is every pixel of rows 1..4 within 3 columns (the vertical
    stack reaches one row and one column further per layer, after the one-row shift) and of row 5 within 3 columns
    to the left: nothing inside is missed."""
    model = _gated((1, 7, 7), 2, filters=8, layers=3)
    field = receptive_field(model, (5, 3))
    expected = torch.zeros(7, 7, dtype=torch.bool)
    expected[1:5, 0:7] = True
    expected[5, 0:3] = True
    assert torch.equal(field > 0, expected)


def test_cached_sampling_draws_the_naive_samples():
    model = _gated((3, 5, 4), 4, layers=3)
    torch.manual_seed(3)
    cached = model.sample(6)
    torch.manual_seed(3)
    naive = model.sample(6, naive=True)
    assert torch.equal(cached, naive)
    assert len(cached.unique()) == 4


def test_cached_autocomplete_draws_the_naive_completion():
    model = _gated((1, 6, 5), 2, layers=3, kernel_size=5)
    images = torch.randint(0, 2, (4, 1, 6, 5)).double()
    masked = mask_lower_half(images)
    masked[0, 0, 1, 2] = -1  # a missing pixel in the known half, in one example only
    torch.manual_seed(4)
    cached = model.autocomplete(masked)
    torch.manual_seed(4)
    naive = model.autocomplete(masked, naive=True)
    assert torch.equal(cached, naive)
    known = masked >= 0
    assert torch.equal(cached[known], images[known])


def test_float32_cached_sampling_agrees_with_naive():
    torch.manual_seed(0)
    model = dgm.create("gated-pixelcnn", shape=(1, 12, 12), levels=2, filters=8, layers=3)
    torch.manual_seed(5)
    cached = model.sample(2)
    torch.manual_seed(5)
    naive = model.sample(2, naive=True)
    assert torch.equal(cached, naive)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="odd"):
        dgm.create("gated-pixelcnn", shape=(1, 4, 4), levels=2, kernel_size=4)
    with pytest.raises(ValueError, match="at least 3"):
        dgm.create("gated-pixelcnn", shape=(1, 4, 4), levels=2, kernel_size=1)
    with pytest.raises(ValueError, match="multiple"):
        dgm.create("gated-pixelcnn", shape=(3, 4, 4), levels=2, filters=4)
