"""Conditioning of autoregressive image models (class labels, vectors, feature maps) and labels through the
trainer, the evaluation and ``dgm sample``."""
import numpy as np
import pytest
import torch

import dgm
from ar_checks import dependency_violations, total_probability
from dgm.cli import main
from dgm.data.base import Data
from dgm.models.autoregressive.tools import mask_lower_half, receptive_field
from dgm.metrics.likelihood import log_likelihoods
from dgm.runs import write_pictures
from dgm.training import fit, seed_everything

MODELS = ["pixelcnn", "gated-pixelcnn"]
CONDITIONS = {"labels": ({"n_classes": 3}, lambda n: torch.arange(n) % 3),
              "vector": ({"condition_shape": [4]}, lambda n: torch.randn(n, 4, dtype=torch.float64)),
              "map": ({"condition_shape": [2, 3, 3]}, lambda n: torch.randn(n, 2, 3, 3, dtype=torch.float64))}


def _model(name, shape, levels, **options):
    torch.manual_seed(0)
    return dgm.create(name, shape=shape, levels=levels, filters=6, layers=2, kernel_size=3, **options).double()


def _condition(kind, n):
    options, make = CONDITIONS[kind]
    return {"labels" if kind == "labels" else "condition": make(n)}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", CONDITIONS)
def test_conditional_probabilities_sum_to_one_and_depend_on_the_condition(name, kind):
    shape = (1, 3, 3) if kind == "map" else (3, 1, 2)
    model = _model(name, shape, 2, **CONDITIONS[kind][0])
    torch.manual_seed(1)
    condition = _condition(kind, 2)
    for k in range(2):
        one = {key: value[k:k + 1] for key, value in condition.items()}
        assert total_probability(model, shape, 2, **one) == pytest.approx(1.0, abs=1e-5)
    x = torch.randint(0, 2, (1, *shape)).double().expand(2, *shape)
    log_p = model.log_prob(x, **condition)
    assert not torch.isclose(log_p[0], log_p[1])  # the same image, two conditions


@pytest.mark.parametrize("name", MODELS)
def test_a_feature_map_condition_keeps_the_ordering(name):
    model = _model(name, (3, 3, 3), 3, condition_shape=[2, 3, 3])
    condition = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    x = torch.randint(0, 3, (1, 3, 3, 3)).double()
    assert len(dependency_violations(model, x, condition=condition)) == 0
    assert receptive_field(model, condition=condition).shape == (3, 3)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", ["labels", "map"])
def test_cached_conditional_sampling_draws_the_naive_samples(name, kind):
    model = _model(name, (3, 3, 3), 4, **CONDITIONS[kind][0])
    condition = _condition(kind, 4)
    torch.manual_seed(2)
    cached = model.sample(4, **condition)
    torch.manual_seed(2)
    assert torch.equal(cached, model.sample(4, naive=True, **condition))
    masked = mask_lower_half(cached)
    torch.manual_seed(3)
    completed = model.autocomplete(masked, **condition)
    torch.manual_seed(3)
    assert torch.equal(completed, model.autocomplete(masked, naive=True, **condition))


def test_conditions_are_checked():
    labelled = _model("gated-pixelcnn", (1, 2, 2), 2, n_classes=3)
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="give labels="):
        labelled.log_prob(x)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        labelled.log_prob(x, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        labelled.sample(2, labels=torch.tensor([0]))
    with pytest.raises(ValueError, match="fractions"):
        labelled.log_prob(x, labels=torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="takes no condition"):
        labelled.log_prob(x, labels=torch.tensor([0, 1]), condition=torch.zeros(2, 4))
    mapped = _model("pixelcnn", (1, 2, 2), 2, condition_shape=[3])
    with pytest.raises(ValueError, match="pass condition="):
        mapped.sample(2)
    with pytest.raises(ValueError, match="condition must have shape"):
        mapped.log_prob(x, condition=torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="one per example"):
        mapped.log_prob(x, condition=torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="condition_shape"):
        dgm.create("pixelcnn", shape=(1, 4, 4), levels=2, condition_shape=[2, 3, 3])


def _two_class_data(with_labels=True):
    """Class 0: the all-zero 2x2 image; class 1: the all-one image."""
    labels = torch.arange(256) % 2
    images = labels.double().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).float().contiguous()
    return Data("two-classes", images, images[:64], levels=2, train_labels=labels if with_labels else None,
                test_labels=labels[:64] if with_labels else None)


def test_the_trainer_passes_labels_and_the_model_learns_them(tmp_path):
    seed_everything(0)
    model = dgm.create("pixelcnn", shape=(1, 2, 2), levels=2, filters=8, layers=2, kernel_size=3, n_classes=2)
    run = fit(model, _two_class_data(), tmp_path / "run", max_steps=80, batch_size=32, lr=0.03, progress=False)
    zeros, ones = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    assert run.model.log_prob(zeros, labels=torch.tensor([0])).exp() > 0.9
    assert run.model.log_prob(ones, labels=torch.tensor([1])).exp() > 0.9
    data = _two_class_data()
    write_pictures(run.model, data, run.directory)  # draws every class in turn
    assert (run.directory / "samples.png").exists()
    log_p = log_likelihoods(run.model, data.test, batch_size=10, labels=data.test_labels)
    assert log_p.shape == (64,) and -log_p.mean() < 0.2
    metrics = (run.directory / "logs" / "csv-0" / "metrics.csv").read_text()
    assert "test/loss" in metrics

    assert main(["sample", str(run.directory), "-n", "6", "--labels", "1", "-o", str(tmp_path / "s.npz")]) == 0
    assert (np.load(tmp_path / "s.npz")["samples"] == 1).mean() > 0.9
    assert main(["sample", str(run.directory), "-n", "6", "--labels", "0,x", "-o", str(tmp_path / "t.npz")]) == 2
    assert main(["sample", str(run.directory), "-n", "6", "--labels", "5", "-o", str(tmp_path / "t.npz")]) == 2


def test_fit_refuses_a_conditional_model_on_unlabelled_data(tmp_path):
    model = dgm.create("pixelcnn", shape=(1, 2, 2), levels=2, filters=4, layers=1, kernel_size=3, n_classes=2)
    with pytest.raises(ValueError, match="has none"):
        fit(model, _two_class_data(with_labels=False), tmp_path / "run", max_steps=1, progress=False)
    model = dgm.create("pixelcnn", shape=(1, 2, 2), levels=2, filters=4, layers=1, kernel_size=3, n_classes=1)
    with pytest.raises(ValueError, match="1 classes"):
        fit(model, _two_class_data(), tmp_path / "run2", max_steps=1, progress=False)


def test_unconditional_models_ignore_labels_and_refuse_them_on_the_command_line(tmp_path):
    seed_everything(0)
    model = dgm.create("pixelcnn", shape=(1, 2, 2), levels=2, filters=4, layers=1, kernel_size=3)
    run = fit(model, _two_class_data(), tmp_path / "run", max_steps=5, batch_size=32, progress=False)
    assert main(["sample", str(run.directory), "-n", "2", "--labels", "1", "-o", str(tmp_path / "s.npz")]) == 2


def test_sample_quality_draws_every_class_of_a_conditional_model():
    from dgm.metrics.quality import generated_samples
    seed_everything(0)
    model = dgm.create("pixelcnn", shape=(1, 3, 3), levels=2, filters=4, layers=1, kernel_size=3, n_classes=3)
    drawn = []
    original = model.sample
    model.sample = lambda n, labels=None: drawn.append(labels.tolist()) or original(n, labels=labels)
    assert generated_samples(model, 7, batch_size=4).shape == (7, 1, 3, 3)
    assert drawn == [[0, 1, 2, 0], [0, 1, 2]]
