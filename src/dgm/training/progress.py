"""How far a run has trained, where it stops, and what its learning-rate schedule gives at a point of the run.

A run's stop condition (:class:`StopCondition`) is ``max_epochs``, ``max_steps`` and ``max_time``, whichever comes
first. Time is counted over the whole run, resumed parts included (Lightning's ``Timer`` keeps it in the checkpoint),
as steps and epochs are. A resumed run is told what it will do (:func:`resume_plan`) and refuses an end it has
already reached, so that it never exits successfully having trained nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_EPOCHS = 10


def batches_per_epoch(n_examples: int, batch_size: int, world_size: int = 1) -> int:
    """Training batches per epoch and process: the incomplete remainder of a pass is dropped (``ValueError`` when
    not even one batch fits)."""
    batches = n_examples // (batch_size * world_size)
    if batches == 0:
        raise ValueError(f"batch size {batch_size} is larger than the training set "
                         f"({n_examples} examples for {world_size} process(es))")
    return batches


@dataclass(frozen=True)
class Progress:
    """What a run has done: optimizer steps, training batches (a GAN takes several steps per batch) and seconds
    of training."""

    steps: int = 0
    batches: int = 0
    seconds: float = 0.0

    @classmethod
    def of_checkpoint(cls, state: dict) -> Progress:
        """The progress stored in a trainer checkpoint (``ValueError`` if it lacks the entries)."""
        try:
            timer = state["callbacks"].get("Timer", {})
            return cls(int(state["global_step"]), int(state["batches_trained"]),
                       float(timer.get("time_elapsed", {}).get("train", 0.0)))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"the checkpoint lacks the progress of the run ({type(error).__name__}: "
                             f"{error})") from None

    def describe(self, batches_per_epoch: int) -> str:
        return f"step {self.steps} (epoch {self.batches / batches_per_epoch:.2f}, {self.seconds:.1f} s trained)"


@dataclass(frozen=True)
class StopCondition:
    """Stop after ``max_epochs`` epochs, ``max_steps`` optimizer steps or ``max_time`` seconds of training in all,
    whichever comes first; with none of them, after :data:`DEFAULT_EPOCHS` epochs."""

    max_epochs: int | None = None
    max_steps: int | None = None
    max_time: float | None = None

    def __post_init__(self):
        if self.max_epochs is None and self.max_steps is None and self.max_time is None:
            object.__setattr__(self, "max_epochs", DEFAULT_EPOCHS)

    def trainer_options(self) -> dict:
        """The stop as Lightning's ``Trainer`` takes it: ``max_steps`` only. Time is a ``Timer`` callback, and
        epochs are counted in training batches by the training module (:meth:`epochs_reached`): Lightning's epoch
        counter treats an epoch that a checkpoint interrupted as complete, so a run stopped mid-epoch and resumed
        would lose the rest of that epoch."""
        return {"max_epochs": -1, "max_steps": -1 if self.max_steps is None else self.max_steps}

    def epochs_reached(self, batches: int, batches_per_epoch: int) -> bool:
        return self.max_epochs is not None and batches >= self.max_epochs * batches_per_epoch

    def describe(self) -> str:
        ends = [f"step {self.max_steps}" if self.max_steps is not None else "",
                f"epoch {self.max_epochs}" if self.max_epochs is not None else "",
                f"{self.max_time:g} s of training in all" if self.max_time is not None else ""]
        return " or ".join(end for end in ends if end)

    def reached(self, progress: Progress, batches_per_epoch: int) -> str | None:
        """Which end ``progress`` has already reached, in words; ``None`` if none."""
        if self.max_steps is not None and progress.steps >= self.max_steps:
            return f"max_steps {self.max_steps} (it is at step {progress.steps})"
        if self.epochs_reached(progress.batches, batches_per_epoch):
            return f"max_epochs {self.max_epochs} (it is at epoch {progress.batches / batches_per_epoch:.2f})"
        if self.max_time is not None and progress.seconds >= self.max_time:
            return f"max_time {self.max_time:g} s (it has trained {progress.seconds:.1f} s)"
        return None

    def fraction_done(self, progress: Progress, batches_per_epoch: int) -> float:
        """The fraction of the run done, in [0, 1], by steps or epochs, whichever is further (0 with neither:
        a time limit alone gives no fraction to schedule by)."""
        fractions = [0.0]
        if self.max_steps is not None:
            fractions.append(progress.steps / self.max_steps)
        if self.max_epochs is not None:
            fractions.append(progress.batches / (batches_per_epoch * self.max_epochs))
        return min(1.0, max(fractions))


def schedule_factor(schedule: str, fraction_done: float) -> float:
    """The learning rate's multiple of its base rate: 1 for ``"constant"``; for ``"cosine"`` a half cosine from 1
    at the start of the run to 0 at its end (Loshchilov & Hutter 2017, SGDR, without restarts)."""
    return 1.0 if schedule == "constant" else 0.5 * (1.0 + math.cos(math.pi * fraction_done))


def resume_plan(progress: Progress, stop: StopCondition, previous_stop: StopCondition, batches_per_epoch: int,
                lr_schedule: str) -> str:
    """What a resumed run will do, in one or two lines; ``ValueError`` if its stop condition is already met.

    A cosine schedule always spans the whole run to its end, so a run given a later end continues on the cosine
    of the longer run: the learning rate jumps from its value at the stop to the longer cosine's value there.
    """
    reached = stop.reached(progress, batches_per_epoch)
    if reached:
        raise ValueError(f"the run has already reached {reached}: nothing to train; give a later end with "
                         "--max-steps, --max-epochs or --max-time (resume=True with max_steps=... in Python)")
    plan = f"resuming from {progress.describe(batches_per_epoch)} until {stop.describe()}"
    if lr_schedule == "cosine" and stop != previous_stop:
        before = schedule_factor("cosine", previous_stop.fraction_done(progress, batches_per_epoch))
        after = schedule_factor("cosine", stop.fraction_done(progress, batches_per_epoch))
        plan += (f"\nthe cosine learning-rate schedule now ends at {stop.describe()}: the rate goes from "
                 f"{before:.3f} to {after:.3f} times its base rate here and falls to 0 at the new end")
    return plan
