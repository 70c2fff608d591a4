"""The programmatic front door: ``create``, ``load``, ``list_models``, ``list_datasets``."""
from __future__ import annotations

from pathlib import Path

import dgm.models
from dgm.checkpoint import load_model
from dgm.core import GenerativeModel
from dgm.data.base import Data, list_datasets
from dgm.registry import MODEL_DESCRIPTIONS, MODELS, accepts, import_modules


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    import_modules(dgm.models.__path__, "dgm.models.")
    return dict(sorted(MODEL_DESCRIPTIONS.items()))


def model_class(name: str) -> type:
    """The model class registered as ``name``."""
    import_modules(dgm.models.__path__, "dgm.models.")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def create(name: str, shape: tuple[int, ...] | None = None, *, levels: int | None = None, data: Data | None = None,
           **overrides) -> GenerativeModel:
    """Build the registered model ``name`` for data of ``shape`` (or for ``data``, which gives shape and levels).

    Every other constructor argument has a default; ``overrides`` replace them. ``levels`` is the number of discrete
    values of the data (2 for binary images, 256 for 8-bit ones) and is passed only to models that model discrete
    data.
    """
    cls = model_class(name)
    if data is not None:
        if shape is not None and tuple(shape) != data.shape:
            raise ValueError(f"shape {tuple(shape)} disagrees with the data's shape {data.shape}")
        shape, levels = data.shape, data.levels if levels is None else levels
    if shape is None:
        raise ValueError("create() needs the data shape, e.g. shape=(2,) or shape=(1, 28, 28), or data=...")
    arguments = {"shape": tuple(int(s) for s in shape), **overrides}
    if accepts(cls, "levels"):
        arguments["levels"] = levels
    elif levels is not None:
        raise ValueError(f"model {name!r} models continuous data and takes no levels (got levels={levels}); "
                         "choose a model for discrete data or a continuous data set")
    unknown = [key for key in overrides if not accepts(cls, key)]
    if unknown:
        raise ValueError(f"model {name!r} has no argument(s) {', '.join(unknown)}")
    try:
        return cls(**arguments)
    except TypeError as error:  # e.g. hidden=3 where a list of widths is expected
        raise ValueError(f"model {name!r} cannot be built from {overrides}: {error}") from error


def load(run_dir: str | Path) -> GenerativeModel:
    """Rebuild a saved model from ``config.json`` and ``model.safetensors`` in ``run_dir``."""
    return load_model(run_dir, model_class)


__all__ = ["create", "load", "list_models", "list_datasets", "model_class"]
