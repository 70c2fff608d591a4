"""``fit``: the one trainer of dgm, PyTorch Lightning underneath.

It fills a run folder (:mod:`dgm.run_folder`): ``run.json``, the model (updated at every epoch), trainer checkpoints
for exact resume and the logs. Pictures and evaluation of the run are :mod:`dgm.runs`' (``dgm train`` calls both).
"""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
from lightning.pytorch.callbacks import Timer, WeightAveraging
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
import torch
from torch import Tensor

from dgm.checkpoint import CheckpointError, SafetensorsCheckpointIO, load_state, weights_mismatch
from dgm.core import GenerativeModel
from dgm.data.base import Data, load
from dgm.objectives import ReverseKL
from dgm.run_folder import RUN_FILE, RunFolder
from dgm.training.callbacks import (EpochCheckpoint, ExportModel, RandomState, SampleGrids, SampleQualityLog,
                                   StopOnInterrupt)
from dgm.training.data import DataModule
from dgm.training.module import TrainingModule
from dgm.training.progress import Progress, StopCondition, batches_per_epoch, resume_plan

AFTER_TRAINING_EXAMPLES = 20_000  # training examples given to a model's after_training hook

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*is smaller than the logging interval.*")
warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
# Training batches follow the trainer's batch count (dgm.training.data.ShuffledBatches), so a mid-epoch resume is exact
warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")


@dataclass
class Run:
    """What ``fit`` returns: the run folder, the trained model (EMA weights if EMA was on), this process's rank,
    the seconds this call trained, and whether a Ctrl-C stopped it before its end."""

    directory: Path
    model: GenerativeModel
    rank: int
    seconds: float
    interrupted: bool = False
    step: int = 0


class TrainingInterrupted(RuntimeError):
    """A second Ctrl-C stopped training at once; the run keeps its last checkpoint."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (one ``seed`` option for everything)."""
    L.seed_everything(seed, workers=True, verbose=False)


def _default_directory(model: GenerativeModel, data: Data) -> Path:
    return Path("runs") / f"{model.model_name}-{data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_options(ema_decay: float | None, **positive) -> None:
    """Training options must be positive numbers (or absent); the EMA decay lies in [0, 1)."""
    for name, value in positive.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if ema_decay is not None and not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")


def _weight_average(decay: float) -> WeightAveraging:
    """An exponential moving average of the weights after every optimizer step, by Lightning's weight-averaging
    callback with PyTorch's multi-tensor EMA (one ``torch._foreach_lerp_`` over all weights). Lightning's own
    ``EMAWeightAveraging`` updates one tensor at a time: 1.38 against 0.40 ms per step for an 829 232-parameter VAE
    on one CPU thread, a sixth of that model's step."""
    return WeightAveraging(multi_avg_fn=_floating_ema(decay))


def _floating_ema(decay: float):
    """The EMA of floating-point tensors with a warm-up: after ``n`` averages the next one keeps
    ``d_n = min(decay, (1 + n)/(10 + n))`` of the average (the ``num_updates`` of TensorFlow's
    ``ExponentialMovingAverage``), so that a short run's average forgets the untrained first weights (with a fixed
    0.9995, 2000 steps still keep 37% of them). Integer buffers (a batch norm's ``num_batches_tracked``, a
    progressive GAN's step counter) are counts, not weights: the average takes their current value."""
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        n = num_averaged.to(averaged[0].dtype)  # a tensor where the weights are: no device sync each step
        torch._foreach_lerp_(averaged, current, 1 - ((1 + n) / (10 + n)).clamp(max=decay))
    return update


def _check_self_updating(model: GenerativeModel, ema_decay: float | None, devices: int) -> None:
    """A model that updates itself (online EM, no optimizer groups) takes neither an EMA of its weights, which would
    average its untrained start in, nor several devices, whose statistics it would not share."""
    name = model.model_name or type(model).__name__
    if ema_decay is not None:
        raise ValueError(f"{name} updates itself (EM) and has no weights to average: leave ema_decay unset")
    if devices > 1:
        raise ValueError(f"{name} updates itself by online EM, whose statistics are not shared between processes: "
                         "train it on one device")


def fit(model: GenerativeModel, data: Data | str, out: str | Path | None = None, *,
        max_epochs: int | None = None, max_steps: int | None = None, max_time: float | None = None,
        batch_size: int = 128, lr: float = 1e-3, lr_schedule: str = "constant", grad_clip: float | None = None,
        ema_decay: float | None = None, seed: int = 0, devices: int = 1, strategy: str = "auto",
        accelerator: str = "auto", precision: str = "32-true", eval_batches: int | None = None,
        objective: str | None = None, anneal_steps: int = 0, quality_every: int | None = None,
        quality_metrics: list[str] | None = None, quality_samples: int = 1000, pictures_every: int | None = None,
        resume: bool = False, progress: bool = True, callbacks: list | tuple = ()) -> Run:
    """Train ``model`` on ``data`` and return the :class:`Run`.

    Stops after ``max_epochs``, ``max_steps`` optimizer steps or ``max_time`` seconds of training in all,
    whichever comes first (10 epochs when none is given). ``ema_decay`` keeps an exponential moving average of the
    weights, used for evaluation and export, its decay warmed up as ``min(ema_decay, (1 + n)/(10 + n))`` after ``n``
    averages. ``resume=True`` continues the run in ``out`` from its last checkpoint,
    exactly as if it had not stopped, to the stop condition given now (one it has already reached is refused); it
    prints where it starts and ends. ``objective="reverse_kl"`` fits a flow to the energy of the data set
    (``energy-u1`` …) by reverse KL instead of the model's own objective, annealed over ``anneal_steps`` batches
    (:mod:`dgm.objectives`). ``accelerator``, ``devices`` and ``strategy`` are Lightning's (``"auto"`` takes a GPU
    when there is one; ``strategy="ddp"`` for distributed data parallel), and so is ``precision``: ``"bf16-mixed"``
    runs the training step under ``torch.autocast`` in bfloat16 (weights, optimizer and EMA stay float32; on a CPU
    with AMX a U-Net's step takes 0.6–0.7 times as long, see :mod:`dgm.nn.unet`); ``callbacks`` are extra Lightning
    callbacks. ``quality_every = k`` logs sample-quality metrics (``quality_metrics``, the data's defaults if
    ``None``, of ``quality_samples`` samples; :class:`~dgm.training.callbacks.SampleQualityLog`) at every ``k``-th
    epoch's test evaluation, with the EMA weights where there are; ``pictures_every = k`` draws the samples of
    every ``k``-th epoch (:class:`~dgm.training.callbacks.SampleGrids`). ``eval_batches`` limits the test batches
    evaluated at each epoch end (all by default). A stop by ``max_time`` within an epoch skips the test evaluation
    Lightning would run there: the final evaluation of the run (:func:`dgm.runs.evaluate_run`) follows.

    The run folder is held by this process while it trains (:meth:`RunFolder.owned`): a second training of the
    same folder is refused. Every option, the data and the checkpoint to resume from are checked before the folder
    is touched, so a refused run leaves it as it was. A new run needs a new or empty folder. A Ctrl-C stops after
    the current batch with a checkpoint at that step (``Run.interrupted``); a second one stops at once
    (:class:`TrainingInterrupted`).
    """
    data = load(data) if isinstance(data, str) else data
    if tuple(model.config["shape"]) != data.shape or model.config.get("levels") != data.levels:
        raise ValueError(f"the model expects shape {tuple(model.config['shape'])} with levels "
                         f"{model.config.get('levels')}, but {data.name} has shape {data.shape} with levels "
                         f"{data.levels}; build the model with dgm.create(name, data=data)")
    _check_options(max_epochs=max_epochs, max_steps=max_steps, max_time=max_time, batch_size=batch_size, lr=lr,
                   grad_clip=grad_clip, ema_decay=ema_decay, eval_batches=eval_batches)
    if lr_schedule == "cosine" and max_steps is None and max_epochs is None:
        raise ValueError("lr_schedule='cosine' needs max_steps or max_epochs (max_time alone is open-ended)")
    epoch_batches = batches_per_epoch(len(data.train), batch_size, devices)
    folder = RunFolder(out if out is not None else _default_directory(model, data))
    stop = StopCondition(max_epochs, max_steps, max_time)
    options = {"max_epochs": max_epochs, "max_steps": max_steps, "max_time": max_time, "batch_size": batch_size,
               "lr": lr, "lr_schedule": lr_schedule, "grad_clip": grad_clip, "ema_decay": ema_decay,
               "seed": seed, "accelerator": accelerator, "precision": precision, "devices": devices,
               "strategy": strategy, "eval_batches": eval_batches, "objective": objective, "anneal_steps": anneal_steps,
               "quality_every": quality_every, "quality_metrics": quality_metrics, "quality_samples": quality_samples,
               "pictures_every": pictures_every}

    seed_everything(seed)
    build = data.train_batch or data.train.__getitem__
    labels = _class_labels(model, data)
    module = TrainingModule(model, lambda indices: build(indices), lr=lr, lr_schedule=lr_schedule,
                            grad_clip=grad_clip,
                            train_labels=None if labels is None else lambda indices: labels[indices],
                            objective=_objective(model, data, objective, anneal_steps), stop=stop)
    if not module.groups:
        _check_self_updating(model, ema_decay, devices)
    datamodule = DataModule(len(data.train), data.test, batch_size=batch_size, seed=seed, eval_batches=eval_batches,
                            test_labels=None if labels is None else data.test_labels)
    ema = [] if ema_decay is None else [_weight_average(ema_decay)]
    quality = [] if quality_every is None else [SampleQualityLog(data, quality_every, quality_metrics,
                                                                 quality_samples)]
    grids = [] if pictures_every is None else [SampleGrids(data, folder.path, pictures_every)]
    interrupt = StopOnInterrupt()
    callbacks = [RandomState(), *quality, *grids, *ema,  # quality before the EMA, which swaps the raw weights back
                 ExportModel(folder.path), EpochCheckpoint(folder.checkpoints),
                 Timer(duration=None if max_time is None else {"seconds": float(max_time)}), interrupt, *callbacks]
    trainer = _trainer(folder, callbacks, several_optimizers=len(module.groups) > 1, progress=progress,
                       accelerator=accelerator, precision=precision, devices=devices, strategy=strategy,
                       **stop.trainer_options())

    launching = _launching_process()
    if launching:
        folder.check_not_in_use()
        checkpoint = _checkpoint_to_resume(folder, resume, model, stop, epoch_batches, lr_schedule)
    else:  # a process of Lightning's DDP launcher: the launching process has checked the folder and holds it
        checkpoint = folder.last_checkpoint if resume and folder.last_checkpoint.exists() else None
    with folder.owned() if launching else nullcontext():
        if launching and not resume:
            folder.check_free_for_a_new_run()  # again: another process may have started a run meanwhile
        if trainer.is_global_zero:
            folder.forget_metrics()  # the evaluation of the model before this training
            previous = folder.read_record() if checkpoint else {}
            folder.write_record({"model": model.model_name, "data": data.name, "data_options": data.options,
                                 "train": options, "seconds": previous.get("seconds", 0.0)})
            if checkpoint is None:
                model.save(folder.path)  # the initial weights: a run stopped before its first checkpoint restarts
        model.train()
        started = time.perf_counter()
        try:
            with denormals_flushed():
                trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        except SystemExit:  # Lightning's answer to a second Ctrl-C
            _record_training(folder, time.perf_counter() - started, trainer)
            raise TrainingInterrupted(f"training interrupted at step {trainer.global_step}; the run continues from "
                                      f"its last checkpoint with: dgm train --resume {folder.path}") from None
        seconds = time.perf_counter() - started
        model.eval()
        fitted_after = None
        if model.offers("after_training"):
            with torch.no_grad():
                fitted_after = model.after_training(_some_training_examples(data, build, seed))
        if trainer.is_global_zero:
            model.save(folder.path)
        _record_training(folder, seconds, trainer, fitted_after)
    return Run(folder.path, model, trainer.global_rank, seconds, interrupt.interrupted, trainer.global_step)


def _some_training_examples(data: Data, build, seed: int) -> Tensor:
    """Up to ``AFTER_TRAINING_EXAMPLES`` training examples, drawn without replacement by ``seed``."""
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))
    return build(order[:AFTER_TRAINING_EXAMPLES])


@contextmanager
def denormals_flushed():
    """CPU arithmetic with denormal numbers (below 1.2e-38 in float32) flushed to zero, as before on leaving.

    Adam's moments of a weight whose gradient is mostly zero (an MLP's weights from MNIST's nearly always black
    border pixels) decay geometrically through the denormal range, where every operation costs many cycles: the
    fused Adam step of an 829 232-parameter VAE took 1.68 ms instead of 0.59 ms on one CPU thread after a few hundred
    steps. Flushing them changes no value above 1.2e-38."""
    flushing = flushes_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(flushing)


def flushes_denormals() -> bool:
    """Whether the CPU flushes denormal numbers to zero now (``torch.set_flush_denormal`` has no getter)."""
    return torch.tensor(1e-40, dtype=torch.float32).mul(1.0).item() == 0.0


def _launching_process() -> bool:
    """Whether this is the process that was started (rank 0), not one that Lightning's DDP launcher started: only
    the first holds the run folder."""
    return rank_zero_only.rank == 0


def _record_training(folder: RunFolder, seconds: float, trainer: L.Trainer, fitted_after: dict | None = None) -> None:
    """The training's seconds added to ``run.json``, with the figures of the model's ``after_training`` hook where
    it reported some (``"after_training"``, those of the latest training)."""
    if trainer.is_global_zero:
        record = folder.read_record()
        record["seconds"] += seconds
        if fitted_after:
            record["after_training"] = fitted_after
        folder.write_record(record)


def _class_labels(model: GenerativeModel, data: Data) -> Tensor | None:
    """The training labels a class-conditional model (``model.n_classes``) is trained with; ``None`` for others."""
    if model.n_classes is None:
        return None
    if data.train_labels is None or data.test_labels is None:
        raise ValueError(f"{model.model_name} is conditioned on class labels, but {data.name} has none; choose a "
                         "data set with labels or build the model without n_classes")
    for split, labels in (("training", data.train_labels), ("test", data.test_labels)):
        if labels.min() < 0 or labels.max() >= model.n_classes:
            raise ValueError(f"the model has {model.n_classes} classes, but the {split} labels of {data.name} lie "
                             f"in {labels.min().item()}..{labels.max().item()}")
    return data.train_labels


def _objective(model: GenerativeModel, data: Data, objective: str | None, anneal_steps: int) -> ReverseKL | None:
    """The objective that replaces the model's own (``None``: the model's own)."""
    if objective is None:
        if anneal_steps:
            raise ValueError("anneal_steps is an option of objective='reverse_kl'")
        return None
    if objective != "reverse_kl":
        raise ValueError(f"objective must be 'reverse_kl' or None (the model's own), got {objective!r}")
    return ReverseKL(model, data.distribution, anneal_steps)


def _trainer(folder: RunFolder, callbacks: list, several_optimizers: bool, progress: bool, strategy: str,
             **options) -> L.Trainer:
    """Lightning's trainer with dgm's checkpoint format and CSV + TensorBoard logs (the training module optimises
    and clips gradients itself)."""
    if several_optimizers and strategy == "ddp":
        strategy = "ddp_find_unused_parameters_true"  # each update leaves the other groups without gradients
    return L.Trainer(
        strategy=strategy, callbacks=callbacks, plugins=[SafetensorsCheckpointIO()], default_root_dir=folder.path,
        logger=[CSVLogger(folder.logs, name="", version=folder.next_csv_version()),
                TensorBoardLogger(folder.logs, name="", version="tensorboard")],
        num_sanity_val_steps=0, log_every_n_steps=10, enable_progress_bar=progress, enable_model_summary=False,
        **options)


def _checkpoint_to_resume(folder: RunFolder, resume: bool, model: GenerativeModel, stop: StopCondition,
                          epoch_batches: int, lr_schedule: str) -> Path | None:
    """The checkpoint a resumed run starts from, checked to load, to fit the model and to leave something to train
    (the plan is printed); for a new run, ``None`` once the folder is known to be free."""
    if not resume:
        folder.check_free_for_a_new_run()
        return None
    last = folder.last_checkpoint
    if not folder.is_run():
        raise ValueError(f"cannot resume: {folder.path} holds no run (no {RUN_FILE})")
    if not last.exists():
        print(f"{folder.path}: no checkpoint yet (it stopped within its first epoch): training it from the "
              f"start until {stop.describe()}")
        return None
    state = load_state(last)
    weights = {key.removeprefix("model."): value for key, value in state.get("state_dict", {}).items()
               if key.startswith("model.")}
    problem = weights_mismatch(model, weights)
    if problem:
        raise CheckpointError(f"{last} holds the weights of another model than the run's {model.model_name}: "
                              f"{problem}")
    previous = folder.read_record().get("train", {})
    previous_stop = StopCondition(*(previous.get(name) for name in ("max_epochs", "max_steps", "max_time")))
    plan = resume_plan(Progress.of_checkpoint(state), stop, previous_stop, epoch_batches, lr_schedule)
    print(f"{folder.path}: {plan}")
    return last
