"""Training and sampling speed of the demo models, printed as one JSON line.

For each model the same process times (a) a plain PyTorch loop (Adam on random batches, no framework) and
(b) dgm's trainer (Lightning, logging, progress bar off) on the same model size and batch size, and reports
``trainer_overhead = plain steps/s ÷ trainer steps/s`` — a ratio, because this machine is shared and noisy.
Sampling: seconds to draw ``n`` samples.

    .venv/bin/python benchmarks/train_speed.py [--steps 200]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from lightning.pytorch.callbacks import Callback

import dgm
from dgm.data import load
from dgm.training import fit, seed_everything

CASES = [  # (model, data, model options, batch size, samples to draw)
    ("realnvp", "moons-raw", {}, 256, 10000),
    ("made", "mnist-binary", {"hidden": [512]}, 128, 64),
]


class StepTimer(Callback):
    """Wall time between the end of batch ``warmup`` and the end of the last batch."""

    def __init__(self, warmup: int = 10):
        self.warmup, self.started, self.steps, self.seconds = warmup, None, 0, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.started = time.perf_counter()
        elif self.started is not None:
            self.steps = trainer.global_step - self.warmup
            self.seconds = time.perf_counter() - self.started


def plain_steps_per_second(model, train: torch.Tensor, batch_size: int, steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # the trainer's Adam: overhead alone
    for step in range(steps + 10):
        if step == 10:
            started = time.perf_counter()
        batch = train[torch.randint(len(train), (batch_size,))]
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()
    return steps / (time.perf_counter() - started)


def trainer_steps_per_second(model, data, batch_size: int, steps: int) -> float:
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as directory:
        fit(model, data, directory, max_steps=steps + timer.warmup, batch_size=batch_size, progress=False,
            callbacks=[timer])
    return timer.steps / timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {}
    for name, data_name, options, batch_size, n_samples in CASES:
        data = load(data_name)
        seed_everything(0)
        plain = plain_steps_per_second(dgm.create(name, data=data, **options), data.train, batch_size, args.steps)
        seed_everything(0)
        model = dgm.create(name, data=data, **options)
        trainer = trainer_steps_per_second(model, data, batch_size, args.steps)
        started = time.perf_counter()
        with torch.no_grad():
            model.sample(n_samples)
        results[f"{name}-{data_name}"] = {
            "plain_steps_per_s": round(plain, 1), "trainer_steps_per_s": round(trainer, 1),
            "trainer_overhead": round(plain / trainer, 3), "batch_size": batch_size,
            "sample_n": n_samples, "sample_s": round(time.perf_counter() - started, 3)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
