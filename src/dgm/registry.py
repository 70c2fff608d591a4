"""Name → class registries for models and name → factory registries for data sets."""
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


def model_class(name: str) -> type:
    _import_all()
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def accepts(cls: type, argument: str) -> bool:
    return argument in inspect.signature(cls.__init__).parameters


def _import_all() -> None:
    """Import every module of ``dgm.data`` and ``dgm.models``: their decorators fill the registries, so a new model
    or data set needs no list to be edited."""
    import dgm.data
    import dgm.models
    for package in (dgm.data, dgm.models):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            importlib.import_module(module.name)
