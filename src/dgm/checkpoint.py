"""The one checkpoint format of dgm: safetensors for tensors, JSON for everything else, never pickle.

* A saved model is a folder with ``config.json`` (``{"model": registry name, "config": constructor arguments}``)
  and ``model.safetensors`` (its ``state_dict``).
* A trainer checkpoint (for exact resume) is one ``.safetensors`` file: every tensor of Lightning's checkpoint
  dictionary is stored as a tensor, and the rest of the dictionary (with tensors replaced by references) is stored
  as JSON in the file's metadata. :class:`SafetensorsCheckpointIO` plugs this into Lightning.

Every safetensors file that dgm writes (:func:`write_tensors`) carries in its metadata the SHA-256 of its tensors
(:func:`tensors_checksum`), and reading (:func:`read_tensors`) verifies it, so a flipped bit is an error rather than
a silently different model. A file without a checksum (written before dgm stored them) loads unverified.

Every file is written to a temporary name and renamed into place, so a run killed while saving leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import CheckpointIO
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_SKELETON_KEY = "dgm.checkpoint"
_CHECKSUM_KEY = "dgm.sha256"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and rename the result to ``path``."""
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None


def _state_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Independent contiguous copies (safetensors refuses tensors that share memory)."""
    return {key: value.detach().cpu().clone().contiguous() for key, value in state.items()}


def tensors_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the name, dtype, shape and bytes of every tensor, in the order of the names."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write contiguous CPU ``tensors`` to the safetensors file ``path`` (atomically), with ``metadata`` and their
    checksum."""
    metadata = (metadata or {}) | {_CHECKSUM_KEY: tensors_checksum(tensors)}
    atomic_write(Path(path), lambda p: save_file(tensors, p, metadata=metadata))


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of the safetensors file ``path``, checked against the checksum stored with them
    (a file without one, written before dgm stored checksums, is read unchecked)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is truncated or corrupt ({error})") from None
    if _CHECKSUM_KEY in metadata and tensors_checksum(tensors) != metadata[_CHECKSUM_KEY]:
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the checksum stored with them")
    return tensors, metadata


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, checked as by :func:`read_tensors`."""
    return read_tensors(path)[0]


def save_model(model, directory: str | Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` into ``directory``; ``state`` replaces
    ``model.state_dict()`` (the trainer exports averaged weights this way)."""
    if not model.model_name:
        raise ValueError(f"{type(model).__name__} is not registered; decorate it with @register_model")
    directory = Path(directory)
    state = model.state_dict() if state is None else state
    write_tensors(directory / WEIGHTS_FILE, _state_tensors(state))
    write_json(directory / CONFIG_FILE, {"model": model.model_name, "config": model.config})
    return directory


def _shape(value: Any) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def weights_mismatch(model: torch.nn.Module, state: Mapping[str, Any]) -> str | None:
    """How ``state`` fails to fit ``model``, in one line (counts of missing, unexpected and wrongly shaped keys,
    with the first of each), or ``None`` when it fits."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshapen = [f"{key} (got {_shape(state[key])}, expected {tuple(value.shape)})"
                 for key, value in expected.items() if key in state and _shape(state[key]) != tuple(value.shape)]
    problems = [f"{len(keys)} {what} (first: {keys[0]})"
                for keys, what in [(missing, "missing keys"), (unexpected, "unexpected"),
                                   (misshapen, "of wrong shape")] if keys]
    return ", ".join(problems) or None


def load_weights(model: torch.nn.Module, state: Mapping[str, Any], source: str, expected: str) -> None:
    """``model.load_state_dict(state)``, or one line of :class:`CheckpointError` saying how ``state`` (read from
    ``source``) does not fit ``model`` (described as ``expected``)."""
    problem = weights_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{source} does not fit {expected}, it holds weights of a different model: {problem}")
    model.load_state_dict(state)


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
    weights = directory / WEIGHTS_FILE
    load_weights(model, read_weights(weights), str(weights), f"the {saved['model']} of {CONFIG_FILE}")
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
    write_tensors(Path(path), tensors, metadata={_SKELETON_KEY: skeleton})


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_state`; damaged or hand-edited metadata is a :class:`CheckpointError`."""
    path = Path(path)
    tensors, metadata = read_tensors(path)
    if _SKELETON_KEY not in metadata:
        raise CheckpointError(f"{path} is not a dgm trainer checkpoint (no '{_SKELETON_KEY}' metadata)")
    try:
        return _unflatten(json.loads(metadata[_SKELETON_KEY]), tensors)
    except (ValueError, KeyError, TypeError, RecursionError) as error:  # not JSON, or not a skeleton of _flatten
        raise CheckpointError(f"{path} has malformed '{_SKELETON_KEY}' metadata "
                              f"({type(error).__name__}: {error})") from None


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O through :func:`save_state` / :func:`load_state` (no pickle)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        save_state(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_state(path)

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)
