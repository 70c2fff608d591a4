"""The programmatic front door: ``create``, ``load``, ``list_models``, ``list_datasets``."""
from __future__ import annotations

import numbers
from pathlib import Path

import dgm.models
from dgm.checkpoint import load_model
from dgm.core import GenerativeModel
from dgm.data.base import Data, list_datasets
from dgm.registry import (MODEL_DESCRIPTIONS, MODELS, accepts, check_options, describe_options, import_modules,
                          options_of, unknown_name)


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    import_modules(dgm.models.__path__, "dgm.models.")
    return dict(sorted(MODEL_DESCRIPTIONS.items()))


def model_class(name: str) -> type:
    """The model class registered as ``name``."""
    import_modules(dgm.models.__path__, "dgm.models.")
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return MODELS[name]


def check_shape(shape) -> tuple[int, ...]:
    """``shape`` as a tuple if it is a non-empty sequence of positive integers, else ``ValueError``."""
    if shape is None:
        raise ValueError("create() needs the data shape, e.g. shape=(2,) or shape=(1, 28, 28), or data=...")
    sizes = shape if isinstance(shape, tuple | list) else ()
    if not sizes or not all(isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1
                            for size in sizes):
        raise ValueError(f"shape must be a tuple of positive integers such as (2,) or (1, 28, 28), got {shape!r}")
    return tuple(int(size) for size in sizes)


def check_data_set(data) -> Data:
    """``data`` if it is a :class:`~dgm.data.Data`, else ``ValueError`` (a name suggests how to load it)."""
    if not isinstance(data, Data):
        example = f"dgm.data.load({data!r})" if isinstance(data, str) else "dgm.data.load('moons')"
        raise ValueError(f"data must be a data set (dgm.data.Data) such as {example}, got {type(data).__name__}")
    return data


def create(name: str, shape: tuple[int, ...] | None = None, *, levels: int | None = None, data: Data | None = None,
           **overrides) -> GenerativeModel:
    """Build the registered model ``name`` for data of ``shape`` (or for ``data``, which gives shape and levels).

    Every other constructor argument has a default; ``overrides`` replace them. ``levels`` is the number of discrete
    values of the data (2 for binary images, 256 for 8-bit ones) and is passed only to models that model discrete
    data.
    """
    cls = model_class(name)
    if data is not None:
        data = check_data_set(data)
        if shape is not None and check_shape(shape) != data.shape:
            raise ValueError(f"shape {tuple(shape)} disagrees with the data's shape {data.shape}")
        shape, levels = data.shape, data.levels if levels is None else levels
    owner, options = f"model {name!r}", options_of(cls.__init__, skip=("shape", "levels"))
    arguments = {"shape": check_shape(shape), **check_options(owner, options, overrides)}
    if accepts(cls, "levels"):
        arguments["levels"] = levels
    elif levels is not None:
        raise ValueError(f"model {name!r} models continuous data and takes no levels (got levels={levels}); "
                         "choose a model for discrete data or a continuous data set")
    try:
        return cls(**arguments)
    except TypeError as error:  # e.g. hidden=[[3]] where a list of widths is expected
        raise ValueError(f"{owner} cannot be built from {overrides}: {error}; its arguments are: "
                         f"{describe_options(options)}") from error


def load(run_dir: str | Path) -> GenerativeModel:
    """Rebuild a saved model from ``config.json`` and ``model.safetensors`` in ``run_dir``."""
    return load_model(run_dir, model_class)


__all__ = ["create", "load", "list_models", "list_datasets", "model_class"]
