"""Callbacks of the dgm trainer: random state in checkpoints, model export, epoch checkpoints."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from dgm.checkpoint import save_model


class RandomState(Callback):
    """Saves the Python, NumPy and torch generator states with each checkpoint and restores them on resume, so
    that the noise drawn after a resume (dequantization, latents, dropout) is the noise of an uninterrupted run."""

    def state_dict(self) -> dict:
        numpy_state = np.random.get_state()
        return {"python": random.getstate(), "torch": torch.get_rng_state(),
                "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]]}

    def load_state_dict(self, state: dict) -> None:
        random.setstate(state["python"])
        torch.set_rng_state(state["torch"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))


class ExportModel(Callback):
    """Whenever the trainer checkpoints, also write ``model.safetensors`` + ``config.json`` into the run folder.

    It must come after the EMA callback, which swaps the averaged weights into the checkpoint's ``state_dict``:
    the exported model is then the averaged one.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if not trainer.is_global_zero:
            return
        prefix = "model."
        weights = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        save_model(pl_module.model, self.directory, state=weights)


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's checkpointing at every epoch end, in dgm's safetensors format (see ``dgm.checkpoint``)."""

    FILE_EXTENSION = ".safetensors"

    def __init__(self, directory: Path):
        super().__init__(dirpath=directory, filename="epoch{epoch:04d}", auto_insert_metric_name=False,
                         save_last=True, save_top_k=-1, every_n_epochs=1, save_on_train_epoch_end=True)
