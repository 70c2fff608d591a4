"""Property-based fuzzing of the Python API: ``dgm.create``, then ``log_prob`` (or ``loss``), ``loss`` and ``sample``
of every registered model, on random shapes, dtypes, value ranges, NaN/inf and batch sizes.

The property: a call either gives a finite result of the right shape (samples that follow the data convention) or
raises ``ValueError``, and it gives a result whenever the input is valid. Hypothesis runs derandomized, so a run is
reproducible; the last test prints how many inputs were tried and how they were answered (docs/reliability.md).
"""
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dgm
from dgm.core import check_data

# tiny configurations, so that the fuzzing of every model takes well under a minute on one thread
TINY = {"ffjord": dict(hidden=[4], atol=1e-3, rtol=1e-3), "gan": dict(hidden=[4], latent_dim=2),
        "ddpm": dict(steps=10, hidden=[4], width=8, multipliers=[1], blocks_per_level=1, attention_levels=[]),
        "ncsn": dict(noise_levels=3, hidden=[4], width=8, multipliers=[1], blocks_per_level=1, attention_levels=[]),
        "gated-pixelcnn": dict(filters=4, layers=1, kernel_size=3), "glow": dict(scales=1, steps=1, channels=4),
        "iaf": dict(n_layers=1, hidden=[4]), "made": dict(hidden=[8]), "maf": dict(n_layers=1, hidden=[4]),
        "nice": dict(n_layers=2, hidden=[4]), "nsf": dict(n_layers=1, hidden=[4]),
        "pixelcnn": dict(filters=4, layers=1, kernel_size=3),
        "pixelcnn++": dict(filters=4, resolutions=1, components=1),
        "pixelsnail": dict(filters=4, blocks=1, residual_blocks=1, key_dim=2, value_channels=2, components=1),
        "planar": dict(n_layers=2), "radial": dict(n_layers=2), "realnvp": dict(n_layers=2, hidden=[4]),
        "realnvp-multiscale": dict(scales=1, couplings=1, channels=4, blocks=1), "sylvester": dict(n_layers=2),
        "wavenet": dict(channels=4, skip_channels=4, layers=2, stacks=1)}
# the data a model is built for: the first of these (shape, levels) that it accepts
DATA = [((2,), None), ((1, 4, 4), 4), ((1, 6), 4)]
MODELS = list(dgm.list_models())
# the choices of each input; valid ones come twice, so that about a third of the inputs are valid
DTYPES = [torch.float32, torch.float64, torch.float16] * 2 + [torch.int64, torch.bool]
SHAPES = ["right"] * 6 + ["extra axis", "one axis less", "larger"]
VALUES = ["valid"] * 4 + ["scaled", "outside", "fraction", "nan", "inf"]
COUNTS = [1, 3, 0, -1, 2.5, 10**13]
SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None)

answers = Counter()  # "tried", "result", "ValueError" and "other" (anything else, a failure) over all models


def tiny_model(name: str) -> dgm.GenerativeModel:
    torch.manual_seed(0)
    for shape, levels in DATA:
        try:
            return dgm.create(name, shape=shape, levels=levels, **TINY.get(name, {})).eval()
        except ValueError:
            continue
    raise AssertionError(f"{name} accepts none of the shapes {[shape for shape, _ in DATA]}")


@pytest.fixture(scope="module")
def models() -> dict:
    return {}


def built(models: dict, name: str) -> dgm.GenerativeModel:
    if name not in models:
        models[name] = tiny_model(name)
    return models[name]


@st.composite
def inputs(draw, shape: tuple[int, ...], levels: int | None) -> tuple[torch.Tensor, bool]:
    """A tensor ``x`` and whether it is valid data for ``shape`` and ``levels``."""
    batch = draw(st.sampled_from([1, 3, 0]))
    reshaped = draw(st.sampled_from(SHAPES))
    full_shape = {"right": shape, "extra axis": (*shape, 1), "one axis less": shape[1:] or (1,),
                  "larger": (*shape[:-1], shape[-1] + 1)}[reshaped]
    dtype, values = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(VALUES))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    if levels is None:
        scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3]))
        x = scale * torch.randn(batch, *full_shape, generator=generator, dtype=torch.float64)
    else:
        x = torch.randint(0, levels, (batch, *full_shape), generator=generator).double()
    if x.numel():
        flat = x.view(-1)
        position = draw(st.integers(0, flat.numel() - 1))
        flat[position] = {"valid": flat[position], "scaled": flat[position] * 1e4,
                          "outside": float(levels or 0) + draw(st.sampled_from([0, 1, 1000])), "fraction": 0.5,
                          "nan": float("nan"), "inf": float(draw(st.sampled_from([1, -1]))) * float("inf")}[values]
    x = x.to(dtype)
    valid = (batch > 0 and reshaped == "right" and dtype.is_floating_point and bool(torch.isfinite(x).all())
             and (levels is None or check_levels_hold(x, levels)))
    return x, valid


def check_levels_hold(x: torch.Tensor, levels: int) -> bool:
    return bool(((x >= 0) & (x <= levels - 1) & (x == x.round())).all())


def answer(call, valid: bool):
    """``call()``'s result, or ``None`` after a ``ValueError``, which a valid input must not raise; counted."""
    answers["tried"] += 1
    try:
        result = call()
    except ValueError as error:
        answers["ValueError"] += 1
        assert not valid, f"a valid input was refused: {error}"
        assert "\n" not in str(error), "a ValueError must be one line"
        return None
    except Exception:
        answers["other"] += 1
        raise
    answers["result"] += 1
    return result


@pytest.mark.parametrize("name", MODELS)
def test_create_refuses_bad_shapes_with_value_error(name):
    @settings(SETTINGS, max_examples=20)
    @given(shape=st.one_of(st.just("2"), st.tuples(st.sampled_from([0, -1, 2.5, True, "2"])),
                           st.lists(st.integers(-2, 0), min_size=1, max_size=3)))
    def fuzz(shape):
        assert answer(lambda: dgm.create(name, shape=shape), valid=False) is None
    fuzz()


@pytest.mark.parametrize("name", MODELS)
def test_log_prob_and_loss_give_a_finite_result_or_value_error(models, name):
    model = built(models, name)
    shape, levels = tuple(model.config["shape"]), model.config.get("levels")

    @SETTINGS
    @given(case=inputs(shape, levels), method=st.sampled_from(["log_prob", "loss"]))
    def fuzz(case, method):
        x, valid = case
        if method == "log_prob" and model.likelihood is not None:
            with torch.no_grad():
                result = answer(lambda: model.log_prob(x), valid)
            assert result is None or (result.shape == (len(x),) and torch.isfinite(result).all())
        else:
            result = answer(lambda: model.loss(x), valid)
            assert result is None or torch.isfinite(result["loss"])
    fuzz()


@pytest.mark.parametrize("name", MODELS)
def test_sample_gives_data_or_value_error(models, name):
    model = built(models, name)
    shape, levels = tuple(model.config["shape"]), model.config.get("levels")

    @settings(SETTINGS, max_examples=20)
    @given(n=st.sampled_from(COUNTS))
    def fuzz(n):
        valid = isinstance(n, int) and 1 <= n <= 3
        samples = answer(lambda: model.sample(n), valid)
        assert samples is None or check_data(samples, shape, levels, name="samples").shape == (n, *shape)
    fuzz()


def test_report_the_counts():
    """Runs last: how the fuzzed inputs were answered, for docs/reliability.md."""
    print(f"\nfuzzed inputs: {answers['tried']} tried over {len(MODELS)} models, {answers['result']} results, "
          f"{answers['ValueError']} ValueErrors, {answers['other']} other exceptions")
    assert answers["other"] == 0
