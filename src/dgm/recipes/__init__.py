"""Recipes: named presets of (model, data, hyper-parameters), one YAML file each in this folder."""
from __future__ import annotations

from importlib import resources

import yaml

from dgm.registry import unknown_name

RECIPE_KEYS = {"description", "model", "data", "data_options", "model_options", "train"}


def list_recipes() -> dict[str, str]:
    """Recipe names with their one-line description."""
    return {name: load_recipe(name)["description"] for name in _names()}


def _names() -> list[str]:
    files = resources.files(__package__).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def load_recipe(name: str) -> dict:
    """The recipe ``name`` as a dictionary with every key of ``RECIPE_KEYS``."""
    if name not in _names():
        raise unknown_name("recipe", name, _names())
    recipe = yaml.safe_load(resources.files(__package__).joinpath(f"{name}.yaml").read_text())
    unknown = set(recipe) - RECIPE_KEYS
    if unknown or not {"description", "model", "data"} <= set(recipe):
        raise ValueError(f"recipe {name} must have description, model and data, and only {sorted(RECIPE_KEYS)}")
    return {"data_options": {}, "model_options": {}, "train": {}, **recipe}
