"""Name → class registries for models and name → factory registries for data sets."""
from __future__ import annotations

import inspect
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
    """Import the modules whose decorators fill the registries."""
    import dgm.data  # noqa: F401
    import dgm.models  # noqa: F401
