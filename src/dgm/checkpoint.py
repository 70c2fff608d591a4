"""The one checkpoint format of dgm: safetensors for tensors, JSON for everything else, never pickle.

* A saved model is a folder with ``config.json`` (``{"model": registry name, "config": constructor arguments}``)
  and ``model.safetensors`` (its ``state_dict``).
* A trainer checkpoint (for exact resume) is one ``.safetensors`` file: every tensor of Lightning's checkpoint
  dictionary is stored as a tensor, and the rest of the dictionary (with tensors replaced by references) is stored
  as JSON in the file's metadata. :class:`SafetensorsCheckpointIO` plugs this into Lightning.

Every file is written to a temporary name and renamed into place, so a run killed while saving leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import CheckpointIO
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_SKELETON_KEY = "dgm.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and rename the result to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, content: Any) -> None:
    atomic_write(Path(path), lambda p: p.write_text(json.dumps(content, indent=2) + "\n"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None


def _state_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Independent contiguous copies (safetensors refuses tensors that share memory)."""
    return {key: value.detach().cpu().clone().contiguous() for key, value in state.items()}


def save_model(model, directory: str | Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` into ``directory``; ``state`` replaces
    ``model.state_dict()`` (the trainer exports averaged weights this way)."""
    if not model.model_name:
        raise ValueError(f"{type(model).__name__} is not registered; decorate it with @register_model")
    directory = Path(directory)
    state = model.state_dict() if state is None else state
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(_state_tensors(state), p))
    write_json(directory / CONFIG_FILE, {"model": model.model_name, "config": model.config})
    return directory


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is truncated or corrupt ({error})") from None


def load_model(directory: str | Path, model_class: Callable[[str], type]):
    """Rebuild the model saved in ``directory`` (config.json + model.safetensors); ``model_class`` finds the class
    of a registry name (:func:`dgm.api.model_class`, which knows every model; this module knows none)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a run folder (no such directory)")
    saved = read_json(directory / CONFIG_FILE)
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise CheckpointError(f"{directory / CONFIG_FILE} lacks the keys 'model' and 'config'")
    try:
        model = model_class(saved["model"])(**saved["config"])
    except TypeError as error:
        raise CheckpointError(f"{directory / CONFIG_FILE} does not fit {saved['model']}: {error}") from None
    weights = read_weights(directory / WEIGHTS_FILE)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} does not fit {saved['model']}: {error}") from None
    return model.eval()


# -- trainer checkpoints -----------------------------------------------------------------------------------------

def _flatten(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON skeleton of ``value``; tensors go to ``tensors`` under their path and are referenced by it."""
    if isinstance(value, torch.Tensor):
        tensors[where] = value.detach().cpu().clone().contiguous()
        return {"__tensor__": where}
    if isinstance(value, np.ndarray):
        tensors[where] = torch.from_numpy(value.copy())
        return {"__ndarray__": where}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        items = [[_flatten(k, tensors, f"{where}/key{i}"), _flatten(v, tensors, f"{where}/{k}")]
                 for i, (k, v) in enumerate(value.items())]
        return {"__dict__": items}
    if isinstance(value, list | tuple):
        items = [_flatten(v, tensors, f"{where}/{i}") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"checkpoint entry {where} of type {type(value).__name__} cannot be stored without pickle")


def _unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, list):
        return [_unflatten(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if "__ndarray__" in skeleton:
        return tensors[skeleton["__ndarray__"]].numpy()
    if "__tuple__" in skeleton:
        return tuple(_unflatten(v, tensors) for v in skeleton["__tuple__"])
    return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in skeleton["__dict__"]}


def save_state(state: dict[str, Any], path: str | Path) -> None:
    """Write a nested dictionary of tensors and plain values to one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_flatten(state, tensors, "root"))
    atomic_write(Path(path), lambda p: save_file(tensors, p, metadata={_SKELETON_KEY: skeleton}))


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_state`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is truncated or corrupt ({error})") from None
    if _SKELETON_KEY not in metadata:
        raise CheckpointError(f"{path} is not a dgm trainer checkpoint (no '{_SKELETON_KEY}' metadata)")
    return _unflatten(json.loads(metadata[_SKELETON_KEY]), tensors)


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O through :func:`save_state` / :func:`load_state` (no pickle)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        save_state(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_state(path)

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)
