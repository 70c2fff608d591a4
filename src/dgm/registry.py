"""Name → class registries for models and name → factory registries for data sets.

A leaf of the import graph: model and data modules register themselves here, and the modules that look names up
(``dgm.api`` for models, ``dgm.data.base`` for data sets) first import the modules of their package.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

MODELS: dict[str, type] = {}
MODEL_DESCRIPTIONS: dict[str, str] = {}
DATASETS: dict[str, Callable] = {}
DATASET_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str):
    """Class decorator: make a GenerativeModel subclass reachable as ``dgm.create(name, ...)``."""
    def decorate(cls):
        if name in MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        cls.model_name = name
        MODELS[name] = cls
        MODEL_DESCRIPTIONS[name] = description
        return cls
    return decorate


def register_dataset(name: str, description: str):
    """Function decorator: ``factory(**options) -> Data`` becomes ``dgm.data.load(name, **options)``."""
    def decorate(factory):
        if name in DATASETS:
            raise ValueError(f"data set name {name!r} is registered twice")
        DATASETS[name] = factory
        DATASET_DESCRIPTIONS[name] = description
        return factory
    return decorate


def accepts(cls: type, argument: str) -> bool:
    return argument in inspect.signature(cls.__init__).parameters


def import_modules(folders: list[str], prefix: str) -> None:
    """Import every module below the package ``folders`` (its ``__path__``) whose dotted names start with ``prefix``:
    their decorators fill the registries, so a new model or data set needs no list to be edited. Each package
    imports its own (``dgm.api`` the models, ``dgm.data.base`` the data sets), so this module imports nothing of
    dgm."""
    for module in pkgutil.walk_packages(folders, prefix=prefix):
        importlib.import_module(module.name)
