"""Runs ``dgm train`` in a process of its own that kills itself (SIGKILL, as ``kill -9``) at a chosen point.

    python tests/fault_runner.py KILL -- ARGS...

``KILL`` is ``none``, ``step:N`` (after optimizer step N) or ``write:N`` (in the middle of writing
``last.safetensors`` at step N: half the file is on disk under its temporary name, the rename has not happened).
Used by ``tests/test_fault_injection.py``.
"""
import os
import signal
import sys

import torch

import dgm.checkpoint
from dgm.cli import main
from dgm.training.module import TrainingModule


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_after_step(step: int) -> None:
    original = TrainingModule.on_train_batch_end

    def on_train_batch_end(self, outputs, batch, batch_idx):
        original(self, outputs, batch, batch_idx)
        if self.trainer.global_step == step:
            _die()
    TrainingModule.on_train_batch_end = on_train_batch_end


def _kill_while_writing_last_checkpoint(step: int) -> None:
    original = dgm.checkpoint.atomic_write
    steps = {"now": None}

    def on_train_batch_end(self, outputs, batch, batch_idx, _original=TrainingModule.on_train_batch_end):
        _original(self, outputs, batch, batch_idx)
        steps["now"] = self.trainer.global_step
    TrainingModule.on_train_batch_end = on_train_batch_end

    def atomic_write(path, write):
        if path.name != "last.safetensors" or steps["now"] != step:
            return original(path, write)

        def half_then_die(temporary):
            write(temporary)
            os.truncate(temporary, os.path.getsize(temporary) // 2)
            _die()
        return original(path, half_then_die)
    dgm.checkpoint.atomic_write = atomic_write


if __name__ == "__main__":
    torch.set_num_threads(1)
    kill, separator, *arguments = sys.argv[1:]
    assert separator == "--"
    kind, _, at = kill.partition(":")
    if kind == "step":
        _kill_after_step(int(at))
    elif kind == "write":
        _kill_while_writing_last_checkpoint(int(at))
    sys.exit(main(arguments))
