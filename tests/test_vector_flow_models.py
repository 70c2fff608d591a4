"""The vector flow models nice, maf, iaf and nsf: normalised densities, samples from the inverse, registry and data."""
import math

import pytest
import torch
from torch.nn.utils import vector_to_parameters

import dgm
from dgm.cli import TRAIN_OPTIONS
from dgm.data.base import load
from dgm.data.toy2d import distribution, grid
from dgm.distributions import StandardNormal
from dgm.recipes import load_recipe

MODELS = {
    "nice": {"n_layers": 3, "hidden": [16, 16]},
    "maf": {"n_layers": 3, "hidden": [16, 16]},
    "maf-spline": {"n_layers": 2, "hidden": [16], "transform": "spline", "bins": 4, "bound": 3.0},
    "iaf": {"n_layers": 3, "hidden": [16, 16]},
    "nsf": {"n_layers": 3, "hidden": [16, 16], "bins": 5, "bound": 3.0},
    "nsf-autoregressive": {"n_layers": 3, "hidden": [16], "bins": 5, "bound": 3.0, "autoregressive": True},
}
GRID, CELL_AREA = grid(((-8.0, 8.0), (-8.0, 8.0)), 0.05)


def random_model(name: str, dim: int = 2, seed: int = 0, std: float = 0.2):
    """A float64 model with every parameter drawn from N(0, std²): far from the identity, its mass inside [-8, 8]²."""
    model = dgm.create(name.split("-")[0], (dim,), **MODELS[name]).double()
    count = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(seed)
    vector_to_parameters(std * torch.randn(count, generator=generator, dtype=torch.float64), model.parameters())
    return model


@pytest.mark.parametrize("name", MODELS)
def test_density_integrates_to_one(name):
    model = random_model(name)
    with torch.no_grad():
        log_density = model.log_prob(GRID)
    non_gaussian = (log_density - StandardNormal((2,)).log_prob(GRID))[log_density > math.log(1e-3)]
    assert non_gaussian.abs().max() > 0.5  # the random flow moves the density well away from N(0, I)
    assert torch.exp(log_density).sum() * CELL_AREA == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("name", MODELS)
def test_samples_are_the_inverse_of_base_noise_and_log_prob_follows(name):
    model = random_model(name, dim=3, seed=1)
    torch.manual_seed(3)
    x = model.sample(20)
    torch.manual_seed(3)
    z = torch.randn(20, 3, dtype=torch.float64)
    torch.testing.assert_close(model.latent_codes(x), z, atol=1e-8, rtol=0)
    assert model.layer_trajectory(x)[-1].shape == (20, 3)
    assert torch.isfinite(model.log_prob(x)).all()


@pytest.mark.parametrize("name", MODELS)
def test_saved_model_reloads_with_the_same_density(name, tmp_path):
    model = random_model(name, dim=3).float()
    model.save(tmp_path)
    loaded = dgm.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.randn(5, 3)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), atol=1e-6, rtol=0)


def test_models_are_registered_with_exact_likelihoods():
    models = dgm.list_models()
    for name in ("nice", "maf", "iaf", "nsf", "realnvp"):
        assert name in models
        assert dgm.create(name, (4,)).likelihood == "exact"


@pytest.mark.parametrize("name, arguments, message", [
    ("nice", {"shape": (1,)}, r"vectors of shape \(D,\) with D >= 2"),
    ("nsf", {"shape": (1, 4, 4)}, r"vectors of shape \(D,\) with D >= 2"),
    ("nsf", {"shape": (1, 4, 4), "autoregressive": True}, r"vectors of shape \(D,\)"),
    ("maf", {"shape": (1, 4, 4)}, r"vectors of shape \(D,\)"),
    ("iaf", {"shape": (2, 2)}, r"vectors of shape \(D,\)"),
    ("maf", {"shape": (2,), "transform": "cubic"}, "transform must be one of"),
    ("nice", {"shape": (2,), "n_layers": 0}, "n_layers must be an integer of at least 1"),
    ("maf", {"shape": (2,), "n_layers": 0}, "n_layers must be an integer of at least 1"),
])
def test_constructors_reject_unsupported_settings(name, arguments, message):
    shape = arguments.pop("shape")
    with pytest.raises(ValueError, match=message):
        dgm.create(name, shape, **arguments)


def test_breast_cancer_is_a_fixed_standardised_split():
    data = load("breast-cancer")
    assert data.shape == (30,) and len(data.train) == 455 and len(data.test) == 114 and data.levels is None
    torch.testing.assert_close(data.train.mean(dim=0), torch.zeros(30), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train.std(dim=0), torch.ones(30), atol=1e-5, rtol=0)
    assert torch.equal(load("breast-cancer").test, data.test)
    assert set(data.train_labels.tolist()) == {0, 1}


def test_maf_learns_the_tabular_data():
    torch.manual_seed(0)
    data = load("breast-cancer")
    model = dgm.create("maf", data=data, n_layers=2, hidden=[64])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = -model.log_prob(data.test).mean().item()
    for _ in range(100):
        optimizer.zero_grad()
        model.loss(data.train)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        after = -model.log_prob(data.test).mean().item()
    assert before == pytest.approx(30 * 0.5 * math.log(2 * math.pi * math.e), abs=3)  # identity start: N(0, I)
    assert after < before - 15  # strongly correlated features: a Gaussian with full covariance already gains much


@pytest.mark.parametrize("name", ["moons", "circles", "8gaussians", "checkerboard", "2spirals", "pinwheel", "rings"])
def test_2d_flow_recipes_build_their_model_and_fit_in_five_minutes(name):
    recipe = load_recipe(f"flow-{name}")
    assert recipe["data"] == name and distribution(name) is not None
    model = dgm.create(recipe["model"], (2,), **recipe["model_options"])
    assert model.likelihood == "exact"
    assert set(recipe["train"]) <= set(TRAIN_OPTIONS) and recipe["train"]["max_time"] <= 300
