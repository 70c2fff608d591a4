"""Callbacks of the dgm trainer: random state in checkpoints, model export, epoch checkpoints, Ctrl-C."""
from __future__ import annotations

import random
import signal
import threading
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from dgm.checkpoint import save_model
from dgm.core import sample_labels
from dgm.metrics.quality import check_request, mixture_modes, model_quality
from dgm.runs import save_samples_picture


class RandomState(Callback):
    """Saves the Python, NumPy and torch (CPU and CUDA) generator states with each checkpoint and restores them on
    resume, so that the noise drawn after a resume (dequantization, latents, dropout) is the noise of an
    uninterrupted run.

    Validation may draw from the same generators (a test loss that dequantizes) but leaves them as they were: the
    weights a run ends with do not depend on whether, when or on how much it was evaluated, and a run stopped where
    an uninterrupted one would not have evaluated (Ctrl-C, ``max_time`` within an epoch) still resumes exactly.
    """

    def state_dict(self) -> dict:
        numpy_state = np.random.get_state()
        state = {"python": random.getstate(), "torch": torch.get_rng_state(),
                 "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]]}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        random.setstate(state["python"])
        torch.set_rng_state(state["torch"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def on_validation_start(self, trainer, pl_module) -> None:
        self._before_validation = self.state_dict()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.load_state_dict(self._before_validation)


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
                         save_last=True, save_top_k=-1, every_n_epochs=1, save_on_train_epoch_end=True,
                         enable_version_counter=False)

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore nothing: without a monitored metric the state holds only absolute paths of the folder the
        checkpoint was written in. A run folder that was moved or copied must write its checkpoints where it now
        is, over its own ``last.safetensors`` (Lightning would keep the old paths and write ``last-v1``, which no
        later resume reads)."""


class StopOnInterrupt(Callback):
    """The first Ctrl-C (SIGINT) stops training after the current batch, as if the run had reached its end: the
    epoch checkpoint is written at that step (a resume from it is exact) and ``fit`` returns with
    ``interrupted`` set. A second Ctrl-C interrupts at once (Lightning's own handling, which saves nothing)."""

    def __init__(self):
        self.interrupted = False
        self._previous_handler = None

    def on_train_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous_handler = signal.signal(signal.SIGINT, self._ask_to_stop)

    def _ask_to_stop(self, signum, frame) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, self._previous_handler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.interrupted:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handler()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


class EveryKthEpoch(Callback):
    """A callback that acts at the end of the test evaluation of every ``every``-th epoch. The epoch is read from
    the batches the run has trained (resumes included), not counted by the callback, so a resumed run keeps the
    rhythm of an uninterrupted one."""

    def __init__(self, every: int, option: str):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"{option} must be a positive number of epochs, got {every!r}")
        self.every = every

    def due_epoch(self, trainer, pl_module) -> int | None:
        """The epoch just completed if this evaluation is one to act at, else ``None``."""
        epoch = pl_module.batches_trained // max(trainer.num_training_batches, 1)
        if trainer.sanity_checking or epoch == 0 or epoch % self.every:
            return None
        return epoch


class SampleQualityLog(EveryKthEpoch):
    """Sample-quality metrics of the model logged at the end of every ``every``-th epoch's test evaluation, under
    ``quality/<metric>`` beside the test loss: curves of FID or IS over training (homework 6, task 3).

    The test evaluation runs with the averaged weights where the run keeps an EMA (Lightning's weight averaging
    swaps them in), so these are the EMA model's. ``metrics`` and ``n`` are those of
    :func:`dgm.metrics.quality.model_quality` (``n`` samples, drawn in the training's precision, against the first
    ``n`` test examples); the random draws of sampling are undone afterwards with the rest of the evaluation's
    (:class:`RandomState`)."""

    def __init__(self, data, every: int = 1, metrics=None, n: int = 1000):
        super().__init__(every, "quality_every")
        if metrics is not None:
            check_request(data.shape, metrics, modes=mixture_modes(data) is not None)
        self.data, self.metrics, self.n = data, metrics, n

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.due_epoch(trainer, pl_module) is None:
            return
        values = model_quality(pl_module.model, self.data, self.metrics, n=self.n, precision=trainer.precision)
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                pl_module.log(f"quality/{name}", float(value), sync_dist=False)


class SampleGrids(EveryKthEpoch):
    """The picture of the model's samples at the end of every ``every``-th epoch's test evaluation, written as
    ``samples_epoch<E>.png`` in the run folder: the same latents each time where the model draws from a seeded
    generator (the draws are undone afterwards with the rest of the evaluation's, :class:`RandomState`), with the
    EMA weights where the run keeps an average."""

    def __init__(self, data, directory: Path, every: int = 1, n: int = 64):
        super().__init__(every, "pictures_every")
        self.data, self.directory, self.n = data, Path(directory), n

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        epoch = self.due_epoch(trainer, pl_module)
        if epoch is None or not trainer.is_global_zero:
            return
        model = pl_module.model
        torch.manual_seed(0)
        with torch.no_grad():
            samples = model.sample(self.n, **sample_labels(model, self.n))
        save_samples_picture(samples, self.data, self.directory / f"samples_epoch{epoch:04d}.png",
                             title=f"{model.model_name}, epoch {epoch}")
