"""The protocol: config recording, input checks, create/list."""
import pytest
import torch

import dgm
from dgm.core import check_data


def test_config_records_all_arguments_with_defaults_as_json():
    model = dgm.create("test-gaussian", shape=(2,))
    assert model.config == {"shape": [2], "jitter": 0.1}
    model = dgm.create("test-gaussian", shape=(3,), jitter=0.5)
    assert model.config == {"shape": [3], "jitter": 0.5}


def test_create_refuses_unknown_names_and_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        dgm.create("no-such-model", shape=(2,))
    with pytest.raises(ValueError, match="no argument"):
        dgm.create("test-gaussian", shape=(2,), width=3)
    with pytest.raises(ValueError, match="takes no levels"):
        dgm.create("test-gaussian", shape=(2,), levels=2)
    with pytest.raises(ValueError, match="needs the data shape"):
        dgm.create("test-gaussian")


def test_registries_list_first_models_and_datasets():
    models, datasets = dgm.list_models(), dgm.list_datasets()
    assert {"histogram", "made", "realnvp", "gan"} <= set(models)
    assert {"moons", "moons-raw", "digits", "mnist", "mnist-binary", "histogram-1d"} <= set(datasets)
    assert all(isinstance(d, str) and d for d in models.values())


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(4, 3), r"shape \(N, 2\)"),
    (torch.zeros(4, 2, dtype=torch.long), "floating-point"),
    (torch.tensor([[0.0, float("nan")]]), "NaN"),
    (torch.tensor([[0.0, 2.0]]), r"integers in 0..1"),
    (torch.tensor([[0.0, 0.5]]), "fractions"),
    ([[0.0, 1.0]], "torch.Tensor"),
])
def test_check_data_names_what_was_expected(bad, message):
    with pytest.raises(ValueError, match=message):
        check_data(bad, (2,), levels=2)


def test_check_data_accepts_valid_input():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert check_data(x, (2,), levels=2) is x
    assert check_data(torch.randn(3, 2), (2,), levels=None) is not None


def test_model_checks_its_input():
    model = dgm.create("test-gaussian", shape=(2,))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(3, 5))


def test_models_declare_the_optional_hooks_they_offer():
    flow, gan = dgm.create("realnvp", shape=(2,)), dgm.create("gan", shape=(2,))
    pixelcnn = dgm.create("pixelcnn", shape=(1, 4, 4), levels=2)
    assert all(flow.offers(hook) for hook in ("sample_with_log_prob", "latent_codes", "layer_trajectory"))
    assert not any(model.offers(hook) for model in (gan, pixelcnn)
                   for hook in ("sample_with_log_prob", "latent_codes", "layer_trajectory"))
    with pytest.raises(ValueError, match="unknown optional hook 'trajectory'"):
        flow.offers("trajectory")
    with pytest.raises(NotImplementedError, match="no latent space"):
        gan.latent_codes(torch.zeros(3, 2))


def test_sampling_options_are_checked_against_the_models_sampler():
    pixelcnn = dgm.create("pixelcnn", shape=(1, 4, 4), levels=2)
    assert pixelcnn.check_sample_options({"naive": True}) == {"naive": True}
    with pytest.raises(ValueError, match="no sampling option.*temperature; its options are: labels, condition"):
        pixelcnn.check_sample_options({"temperature": 0.5})
