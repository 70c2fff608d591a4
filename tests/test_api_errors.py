"""The Python API answers each user mistake with one ``ValueError`` of one line that names what was expected, and
accepts what it can convert (float64 from numpy, float16) with the same result as float32."""
import numpy as np
import pytest
import torch

import dgm
from dgm.data import load
from dgm.recipes import load_recipe


def refused(call, *expected: str) -> str:
    """The message of the ``ValueError`` that ``call()`` raises, checked to be one line holding each of
    ``expected``."""
    with pytest.raises(ValueError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    for words in expected:
        assert words in message, f"{words!r} not in {message!r}"
    return message


@pytest.fixture(scope="module")
def flow():
    torch.manual_seed(0)
    return dgm.create("realnvp", shape=(2,), n_layers=2, hidden=[8]).eval()


@pytest.fixture(scope="module")
def pixelcnn():
    torch.manual_seed(0)
    return dgm.create("pixelcnn", shape=(1, 4, 4), levels=4, filters=4, layers=1, kernel_size=3).eval()


def test_float64_and_float16_input_give_the_float32_result(flow, pixelcnn):
    points = torch.from_numpy(np.random.default_rng(0).normal(size=(5, 2)))  # float64, as numpy gives
    images = torch.randint(0, 4, (5, 1, 4, 4), dtype=torch.float64)
    for model, x in ((flow, points), (pixelcnn, images)):
        single = model.log_prob(x.float())
        torch.testing.assert_close(model.log_prob(x), single)
        torch.testing.assert_close(model.loss(x)["loss"], model.loss(x.float())["loss"])
        torch.testing.assert_close(model.log_prob(x.half()), model.log_prob(x.half().float()))
    gan = dgm.create("gan", shape=(2,), hidden=[4], latent_dim=2)
    assert torch.isfinite(gan.loss(points)["loss"])


def test_float32_input_on_the_models_device_is_not_copied(flow):
    x = torch.randn(3, 2)
    assert flow.check(x) is x


def test_an_empty_batch_is_refused(flow, pixelcnn):
    refused(lambda: flow.log_prob(torch.zeros(0, 2)), "at least one example", "(0, 2)")
    refused(lambda: pixelcnn.loss(torch.zeros(0, 1, 4, 4)), "at least one example")


def test_nan_or_infinite_input_is_refused(flow, pixelcnn):
    refused(lambda: flow.log_prob(torch.tensor([[0.0, float("nan")]])), "NaN or infinite")
    refused(lambda: flow.loss(torch.tensor([[float("inf"), 0.0]])), "NaN or infinite")
    refused(lambda: pixelcnn.log_prob(torch.full((1, 1, 4, 4), float("nan"))), "NaN or infinite")
    refused(lambda: flow.log_prob(torch.tensor([[1e300, 0.0]], dtype=torch.float64)), "torch.float32 can represent")


def test_wrong_shapes_types_and_values_outside_the_levels_are_refused(flow, pixelcnn):
    refused(lambda: flow.log_prob(torch.zeros(3, 5)), "shape (N, 2)", "(3, 5)")
    refused(lambda: flow.log_prob(torch.zeros(2)), "shape (N, 2)")
    refused(lambda: flow.log_prob(np.zeros((3, 2))), "torch.Tensor", "torch.as_tensor")
    refused(lambda: flow.log_prob(torch.zeros(3, 2, dtype=torch.long)), "floating-point")
    refused(lambda: pixelcnn.log_prob(torch.full((2, 1, 4, 4), 4.0)), "integers in 0..3")
    refused(lambda: pixelcnn.log_prob(torch.full((2, 1, 4, 4), -1.0)), "integers in 0..3")
    refused(lambda: pixelcnn.log_prob(torch.full((2, 1, 4, 4), 0.5)), "integer values 0..3")


def test_create_refuses_a_name_for_data_and_a_bad_shape():
    refused(lambda: dgm.create("realnvp", data="moons-raw"), "dgm.data.Data", "dgm.data.load('moons-raw')")
    for shape in [(2.5,), "2", 2, (0,), (), (True, True)]:
        refused(lambda: dgm.create("realnvp", shape=shape), "shape must be a tuple of positive integers")


@pytest.mark.parametrize("n", [0, -1, 2.0, "3", True])
def test_sample_refuses_a_count_that_is_not_a_positive_integer(flow, n):
    refused(lambda: flow.sample(n), "the number of samples must be an integer of at least 1")


def test_sample_refuses_more_samples_than_memory_allows_in_one_call(flow, pixelcnn):
    for model in (flow, pixelcnn):
        refused(lambda: model.sample(10**13), "the number of samples must be at most", "draw them in batches")
    refused(lambda: flow.sample_with_log_prob(10**13), "must be at most")


def test_unknown_names_suggest_the_closest_ones():
    refused(lambda: dgm.create("realnpv", shape=(2,)), "unknown model 'realnpv'", "did you mean 'realnvp'?")
    refused(lambda: load("moon-raw"), "unknown data set 'moon-raw'", "did you mean 'moons-raw'")
    refused(lambda: load_recipe("realnvp-moon"), "unknown recipe", "did you mean 'realnvp-moons'")


def test_data_set_option_errors_list_the_options_with_their_defaults():
    refused(lambda: load("moons-raw", n=3), "unexpected keyword argument 'n'",
            "its arguments are: n_train=20000, n_test=20000, seed=0")
    refused(lambda: load("gaussians-2d", moed="diagonal"), "did you mean 'mode'?", "mode='rotated'")
    refused(lambda: load("moons", n_train="x"), "n_train must be an integer, like its default 20000")
    refused(lambda: load("moons", n_train=0), "n_train must be an integer of at least 1")
    refused(lambda: load("mnist-binary", bits=4), "its arguments are: none")


def test_model_option_errors_use_the_users_words_and_list_the_options():
    refused(lambda: dgm.create("realnvp", shape=(2,), hiden=[3]), "unexpected keyword argument 'hiden'",
            "did you mean 'hidden'?", "n_layers=8, hidden=(40, 40), max_log_scale=2.0")
    refused(lambda: dgm.create("made", shape=(2,), hidden="x"), "hidden='x'",
            "hidden must be a list of integers, like its default [512, 512]")
    refused(lambda: dgm.create("realnvp", shape=(2,), n_layers=2.5), "n_layers must be an integer")
    refused(lambda: dgm.create("gan", shape=(2,), latent_dim=0), "latent_dim must be an integer of at least 1")


def test_sample_refuses_an_unknown_option_naming_the_ones_it_takes(flow, pixelcnn):
    with pytest.raises(ValueError, match="has no sampling option.* temprature; its options are: temperature"):
        flow.sample(4, temprature=0.5)
    with pytest.raises(ValueError, match="has no sampling option.* steps; its options are: labels"):
        pixelcnn.sample(4, steps=10)


def test_options_checked_only_later_before_are_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match="solver must be one of torchdiffeq's .*dopri5.*, got 'nope'"):
        dgm.create("ffjord", shape=(2,), solver="nope")
    with pytest.raises(ValueError, match="generator_lr must be a positive number"):
        dgm.create("gan", shape=(2,), generator_lr="x")
    with pytest.raises(ValueError, match="critic_lr must be a positive number"):
        dgm.create("gan", shape=(2,), critic_lr=-1.0)
