"""The course's quality targets, trained through the CLI recipes exactly as a user would run them."""
import json

import pytest

import dgm
from dgm.cli import main


def _train(recipe, directory, *flags):
    assert main(["train", recipe, "--out", str(directory), "--no-progress", *flags]) == 0
    return json.loads((directory / "metrics.json").read_text())


def test_histogram_on_seminar_1_data_beats_the_course_assert(tmp_path):
    metrics = _train("histogram-1d", tmp_path / "run")
    assert metrics["likelihood"] == "exact"
    assert metrics["entropy_nats"] < metrics["nll_nats"] < 4.25


@pytest.mark.slow
def test_realnvp_fits_raw_moons_within_a_minute(tmp_path):
    metrics = _train("realnvp-moons", tmp_path / "run")
    model = dgm.load(tmp_path / "run")
    assert sum(p.numel() for p in model.parameters()) <= 20_000
    assert json.loads((tmp_path / "run" / "run.json").read_text())["seconds"] <= 60
    assert metrics["n_test"] == 20_000
    assert metrics["nll_nats"] <= 1.10


def test_made_on_seminar_2_image_density_beats_the_course_assert(tmp_path):
    metrics = _train("made-image-density-60", tmp_path / "run")
    assert metrics["nll_nats"] / 2 < 4.0
