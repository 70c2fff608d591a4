"""Binarization, quantization and dequantization: exact value sets and counts, Bernoulli means, cells, bounds."""
import math

import pytest
import torch

from dgm.data.transforms import (DynamicBinarization, dequantize_course, dynamic_binarize, quantize,
                                 threshold_binarize, uniform_dequantize)

ALL_BYTES = torch.arange(256.0).reshape(256, 1)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- threshold_binarize ------------------------------------------------------------------------------------------------
def test_threshold_binarize_is_the_course_rule_x_above_128():
    binary = threshold_binarize(ALL_BYTES)
    assert binary.dtype == torch.float32
    assert torch.equal(binary, (ALL_BYTES > 128).float())
    assert binary.sum() == 127  # 129..255
    assert binary[128] == 0 and binary[129] == 1


def test_threshold_binarize_gives_the_same_on_uint8_and_float_input():
    assert torch.equal(threshold_binarize(ALL_BYTES.to(torch.uint8)), threshold_binarize(ALL_BYTES))
    assert threshold_binarize(ALL_BYTES, threshold=0).sum() == 255


@pytest.mark.parametrize("bad", [torch.tensor([[256.0]]), torch.tensor([[-1.0]]), torch.tensor([[0.5]]),
                                 torch.tensor([[300]], dtype=torch.int32)])
def test_threshold_binarize_refuses_values_outside_0_255(bad):
    with pytest.raises(ValueError, match="0..255"):
        threshold_binarize(bad)


def test_threshold_binarize_refuses_a_threshold_outside_the_byte_range():
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        threshold_binarize(ALL_BYTES, threshold=300)


# -- dynamic_binarize --------------------------------------------------------------------------------------------------
def test_dynamic_binarize_is_deterministic_at_0_and_255_and_in_0_1_between():
    binary = dynamic_binarize(ALL_BYTES.repeat(1, 100), generator=seeded())
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert binary[0].sum() == 0 and binary[255].sum() == 100


@pytest.mark.parametrize("levels, value", [(256, 64), (256, 200), (17, 5)])
def test_dynamic_binarize_has_bernoulli_mean_x_over_levels_minus_1(levels, value):
    n = 40_000
    probability = value / (levels - 1)
    draws = dynamic_binarize(torch.full((n, 1), float(value)), levels, generator=seeded())
    standard_error = math.sqrt(probability * (1 - probability) / n)
    assert abs(draws.mean().item() - probability) < 4 * standard_error


def test_dynamic_binarize_repeats_with_the_same_generator_seed_only():
    x = ALL_BYTES.repeat(1, 20)
    assert torch.equal(dynamic_binarize(x, generator=seeded(3)), dynamic_binarize(x, generator=seeded(3)))
    assert not torch.equal(dynamic_binarize(x, generator=seeded(3)), dynamic_binarize(x, generator=seeded(4)))


def test_dynamic_binarize_refuses_values_above_levels_minus_1():
    with pytest.raises(ValueError, match="0..16"):
        dynamic_binarize(torch.tensor([[17.0]]), levels=17)


# -- quantize ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", range(1, 9))
def test_quantize_8_bit_input_is_floor_of_x_over_2_to_the_8_minus_bits(bits):
    quantized = quantize(ALL_BYTES, bits)
    assert torch.equal(quantized, torch.div(ALL_BYTES, 2 ** (8 - bits), rounding_mode="floor"))
    values, counts = quantized.unique(return_counts=True)
    assert torch.equal(values, torch.arange(2.0 ** bits))
    assert (counts == 2 ** (8 - bits)).all()  # every level covers the same number of input values


def test_quantize_17_levels_to_2_bits_splits_0_16_as_5_4_4_4():
    quantized = quantize(torch.arange(17.0).reshape(17, 1), bits=2, levels_in=17)  # floor(4x / 17)
    assert quantized.flatten().tolist() == [0] * 5 + [1] * 4 + [2] * 4 + [3] * 4


@pytest.mark.parametrize("bits", [0, 9, True, 2.0])
def test_quantize_refuses_bits_outside_1_to_8_for_bytes(bits):
    with pytest.raises(ValueError, match="bits must be an integer"):
        quantize(ALL_BYTES, bits)


# -- uniform_dequantize ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [2, 17, 256])
def test_uniform_dequantize_stays_in_the_cell_of_x(levels):
    x = torch.arange(float(levels)).reshape(levels, 1).repeat(1, 2000)
    y = uniform_dequantize(x, levels, generator=seeded())
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() < 1
    assert torch.equal(torch.floor(y.double() * levels), x.double())


def test_uniform_dequantize_is_uniform_within_the_cell():
    x = torch.full((100_000, 1), 7.0)
    offset = uniform_dequantize(x, 256, generator=seeded()) * 256 - x  # u ~ U[0, 1)
    assert abs(offset.mean().item() - 1 / 2) < 4 * math.sqrt(1 / 12 / len(x))
    assert abs(offset.var().item() - 1 / 12) < 2e-3
    assert abs((offset < 0.25).float().mean().item() - 0.25) < 6e-3


def test_uniform_dequantize_of_the_top_byte_stays_below_1_when_u_rounds_up(monkeypatch):
    """255 + u rounds to 256 in float32 for u > 1 - 2^-17; the result must stay in the cell [255, 256) / 256."""
    largest_u = 1 - 2.0 ** -24  # the largest float32 below 1, which torch.rand can return
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.full(shape, largest_u, dtype=kw["dtype"]))
    y = uniform_dequantize(torch.tensor([[255.0, 0.0]]), 256)
    assert y[0, 0] < 1 and torch.floor(y[0, 0] * 256) == 255
    assert y[0, 1] == pytest.approx(largest_u / 256)


def test_dequantized_density_gives_the_discrete_probability_and_its_jensen_bound():
    """For p(y) = 2y on [0,1): P(x) = ∫_{x/L}^{(x+1)/L} 2y dy = (2x+1)/L² = E_u p((x+u)/L) / L (module docstring)."""
    levels, draws = 8, 50_000
    x = torch.arange(float(levels)).reshape(levels, 1).repeat(1, draws)
    y = uniform_dequantize(x, levels, generator=seeded()).double()
    density = 2 * y
    exact_probability = (2 * torch.arange(levels, dtype=torch.float64) + 1) / levels ** 2
    assert exact_probability.sum() == pytest.approx(1.0)
    estimated_probability = density.mean(dim=1) / levels
    torch.testing.assert_close(estimated_probability, exact_probability, rtol=0.01, atol=0.0)
    jensen_bound = density.log().mean(dim=1) - math.log(levels)
    assert (jensen_bound < exact_probability.log()).all()


# -- dequantize_course -------------------------------------------------------------------------------------------------
def test_dequantize_course_passes_the_course_hw3_test():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0]) / 256
    y = dequantize_course(x, nbins=256, generator=seeded())
    assert (y >= 0).all() and (y <= 4 / 256).all()
    assert (y[1:] > y[:-1]).all()
    assert (y > x).all()


def test_dequantize_course_on_the_grid_k_over_nbins_minus_1_is_uniform_dequantize_of_k():
    k = torch.arange(256.0).reshape(256, 1).repeat(1, 10)
    course = dequantize_course(k / 255, nbins=256, generator=seeded())
    torch.testing.assert_close(course, uniform_dequantize(k, 256, generator=seeded()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [torch.tensor([1.5]), torch.tensor([-0.1]), torch.tensor([1])])
def test_dequantize_course_refuses_input_outside_0_1_or_integer_dtype(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dequantize_course(bad)


# -- DynamicBinarization -----------------------------------------------------------------------------------------------
def test_dynamic_binarization_fixed_draw_is_a_seeded_bernoulli_draw():
    grey = torch.randint(0, 256, (40, 1, 4, 4), generator=seeded(1), dtype=torch.uint8)
    binarization = DynamicBinarization(grey, seed=5)
    assert torch.equal(binarization.fixed_draw, dynamic_binarize(grey, generator=seeded(5)))


def test_dynamic_binarization_redraws_each_batch_from_the_grey_images_it_names():
    grey = torch.randint(0, 256, (300, 1, 8, 8), generator=seeded(1), dtype=torch.uint8)
    grey[:, :, 0] = torch.tensor([0, 255] * 4, dtype=torch.uint8)  # a deterministic row: every redraw keeps it
    binarization = DynamicBinarization(grey, seed=0)
    index = torch.tensor([7, 3, 299, 3, 0, 150])  # shuffled, with a repeat
    torch.manual_seed(0)
    redraws = binarization(index.repeat(2000)).reshape(2000, len(index), 1, 8, 8)
    assert set(redraws.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(redraws[0], redraws[1])  # fresh draws
    assert (redraws[:, :, :, 0] == torch.tensor([0.0, 1.0] * 4)).all()
    probability = grey[index].double() / 255
    standard_error = (probability * (1 - probability) / len(redraws)).sqrt()
    assert ((redraws.double().mean(0) - probability).abs() <= 4.5 * standard_error + 1e-12).all()


def test_dynamic_binarization_takes_example_indices():
    binarization = DynamicBinarization(torch.randint(0, 256, (50, 1, 4, 4), generator=seeded(2)).float(), seed=0)
    with pytest.raises(ValueError, match="1-D int64 tensor of example numbers"):
        binarization(binarization.fixed_draw[:2])
