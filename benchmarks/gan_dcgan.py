"""dgm's image GAN against a hand-written DCGAN at equal wall-clock time on MNIST / Fashion-MNIST, scored by FID.

In one process, on the same data, with ``--threads`` CPU threads (1 by default), the same seed and the same
training budget of ``--minutes`` of wall clock each:

- hand-written: a DCGAN written directly in PyTorch in the style of the PyTorch examples (``dcgan/main.py``, the
  code most users start from), living only in this file: generator ``z (100)`` → 7x7 → 14x14 → 28x28 by
  transposed convolutions with batch norm and ReLU, ``tanh`` output; critic of two stride-2 convolutions with
  LeakyReLU(0.2) and a 7x7 convolution to one output, every layer under PyTorch's own
  ``torch.nn.utils.parametrizations.spectral_norm``; the examples' N(0, 0.02) initialisation; hinge loss; one critic
  and one generator update per batch, Adam(2e-4, betas (0.5, 0.999)), batch 64, images scaled to [-1, 1]; 683 745
  parameters. A bare loop, no trainer, no average of the weights.
- dgm: ``dgm.create(model, data=data, **model_options)`` trained by ``dgm.training.fit(..., max_time=budget,
  **train)``, the library's public path, configured by :data:`DGM_GAN` at the top of this file or by a recipe
  (``--recipe NAME``: its model, model options and training options; its data and stop are replaced by ``--data``
  and the budget). Its seconds are the trainer's: Lightning, the EMA of the weights, per-epoch test evaluation and
  checkpoints included.

A step is one batch: a critic update and a generator update. ms/step is the training seconds over the steps.

FID by the protocol of benchmarks/image_fid.py, one for every row, as ``dgm evaluate --metrics fid`` computes it:
``--samples`` N samples of each model in the data's convention against the first N test images on the TF-FID
InceptionV3 features, the test and training features cached in ``$DGM_CACHE/reference``; the floor is the same FID of
the first N *training* images, about what a perfect model would score. Inception features take about 0.1 s per image
on one thread: 10 000 images are about 15 minutes, two such sets per data set (both models), plus the test and
training sets the first time; with the two 12-minute trainings, a data set takes 55 to 90 minutes.

    .venv/bin/python benchmarks/gan_dcgan.py                               # 12 minutes each, 10 000 samples
    .venv/bin/python benchmarks/gan_dcgan.py --data mnist,fashion-mnist    # both data sets, one table each
    .venv/bin/python benchmarks/gan_dcgan.py --smoke                       # 20 s each, 200 samples: the path works
    .venv/bin/python benchmarks/gan_dcgan.py --speed                       # ms per step only, no training run

``--speed`` times, in the same process and alternating, 20 steps after warm-up of the hand-written DCGAN (in float32
and under bf16 autocast, which it could use too), of dgm's model in the same bare loop (its own losses and the
trainer's fused Adam, no Lightning, under the autocast of its configured precision) and of dgm's model through
``fit``, each at its configured batch size, on MNIST.
"""
from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

import dgm
from dgm.core import autocast
from dgm.data import load
from dgm.metrics.features import InceptionFeatures
from dgm.recipes import load_recipe
from dgm.training import fit, seed_everything
from dgm.training.progress import batches_per_epoch
from image_fid import check_samples, floor_fid, model_fid, test_statistics  # benchmarks/image_fid.py, beside this

DGM_GAN = {"model": "dcgan",
           "model_options": {"width": 32, "loss": "hinge", "spectral_norm": True},
           "train": {"batch_size": 64, "lr": 2e-4, "ema_decay": 0.999}}
LATENT, G_WIDTH, D_WIDTH = 100, 48, 64  # the hand-written DCGAN's nz, ngf, ndf (the PyTorch example's names)
BATCH, LR, BETAS = 64, 2e-4, (0.5, 0.999)
SPEED_WARMUP, SPEED_STEPS, SPEED_ROUNDS = 5, 20, 3


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- the hand-written DCGAN ---------------------------------------------------------------------------------------
def dcgan_init(module: nn.Module) -> None:
    """The PyTorch example's ``weights_init``: convolution weights N(0, 0.02), batch norms N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z → 7x7 → 14x14 → 28x28; ``sample(n)`` gives images in the data's convention (levels 0..levels−1)."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels
        self.main = nn.Sequential(
            nn.ConvTranspose2d(LATENT, 2 * G_WIDTH, 7, 1, 0, bias=False),
            nn.BatchNorm2d(2 * G_WIDTH), nn.ReLU(True),
            nn.ConvTranspose2d(2 * G_WIDTH, G_WIDTH, 4, 2, 1, bias=False),
            nn.BatchNorm2d(G_WIDTH), nn.ReLU(True),
            nn.ConvTranspose2d(G_WIDTH, 1, 4, 2, 1, bias=False),
            nn.Tanh())
        self.apply(dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z.view(len(z), LATENT, 1, 1))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return ((self(torch.randn(n, LATENT)) + 1) * ((self.levels - 1) / 2)).round()


def critic() -> nn.Sequential:
    """28x28 → 14x14 → 7x7 → one output per image, every convolution spectrally normalised."""
    layers = nn.Sequential(
        nn.Conv2d(1, D_WIDTH, 4, 2, 1), nn.LeakyReLU(0.2, True),
        nn.Conv2d(D_WIDTH, 2 * D_WIDTH, 4, 2, 1), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * D_WIDTH, 1, 7, 1, 0), nn.Flatten(0))
    layers.apply(dcgan_init)
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            spectral_norm(layer)
    return layers


class HandWrittenDCGAN:
    """The generator, the critic, their Adams, and one training step on a batch of training images."""

    def __init__(self, levels: int):
        self.levels = levels
        self.netG, self.netD = Generator(levels), critic()
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=LR, betas=BETAS)
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=LR, betas=BETAS)

    def parameters(self) -> int:
        return parameters(self.netG) + parameters(self.netD)

    def step(self, images: Tensor) -> None:
        """One critic and one generator update on ``images`` in the data's convention (0..levels−1)."""
        real = images * (2 / (self.levels - 1)) - 1
        fake = self.netG(torch.randn(len(real), LATENT))
        self.optimizerD.zero_grad()
        errD = F.relu(1 - self.netD(real)).mean() + F.relu(1 + self.netD(fake.detach())).mean()
        errD.backward()
        self.optimizerD.step()
        self.optimizerG.zero_grad()
        errG = -self.netD(fake).mean()
        errG.backward()
        self.optimizerG.step()


def training_batches(data, batch_size: int, seed: int):
    """Batches of training images, reshuffled every epoch, the incomplete last batch dropped (as ``fit``'s)."""
    generator = torch.Generator().manual_seed(seed)
    per_epoch = batches_per_epoch(len(data.train), batch_size)
    while True:
        for indices in torch.randperm(len(data.train), generator=generator)[:per_epoch * batch_size].split(batch_size):
            yield data.train[indices]


# -- training -----------------------------------------------------------------------------------------------------
class MinuteReport:
    """A line to stderr about once a minute: steps, epochs and seconds so far."""

    def __init__(self, name: str, per_epoch: int):
        self.name, self.per_epoch = name, per_epoch
        self.started = time.perf_counter()
        self.next = self.started + 60

    def __call__(self, steps: int) -> None:
        now = time.perf_counter()
        if now >= self.next:
            print(f"{self.name}: step {steps}, epoch {steps / self.per_epoch:.2f}, {now - self.started:.0f} s",
                  file=sys.stderr, flush=True)
            self.next += 60


class BatchCounter(Callback):
    """Counts the training batches of ``fit`` (Lightning's global step counts each optimizer's steps)."""

    def __init__(self, report: MinuteReport):
        self.batches, self.report = 0, report

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.report(self.batches)


def bare_loop(step, data, batch_size: int, seconds: float, seed: int, name: str) -> tuple[int, float]:
    """``step(images)`` on shuffled batches until ``seconds`` have passed: the steps taken and the seconds."""
    report = MinuteReport(name, batches_per_epoch(len(data.train), batch_size))
    steps, started = 0, time.perf_counter()
    for images in training_batches(data, batch_size, seed):
        if time.perf_counter() - started >= seconds:
            break
        step(images)
        steps += 1
        report(steps)
    return steps, time.perf_counter() - started


def train_hand_written(data, seconds: float, seed: int) -> dict:
    torch.manual_seed(seed)
    gan = HandWrittenDCGAN(data.levels)
    steps, spent = bare_loop(gan.step, data, BATCH, seconds, seed, "hand-written DCGAN")
    return {"model": "hand-written DCGAN (SN critic, hinge)", "generator": gan.netG.eval(),
            "parameters": gan.parameters(), "seconds": spent, "steps": steps, "batch_size": BATCH}


def fit_option(config: dict, name: str):
    """A training option of the dgm configuration, ``fit``'s default where it gives none."""
    return config["train"].get(name, inspect.signature(fit).parameters[name].default)


def train_dgm(data, config: dict, seconds: float, seed: int, threads: int) -> dict:
    train = {"seed": seed} | config["train"] | {"max_epochs": None, "max_steps": None, "max_time": seconds}
    seed_everything(train["seed"])
    model = dgm.create(config["model"], data=data, **config["model_options"])
    batch_size = fit_option(config, "batch_size")
    counter = BatchCounter(MinuteReport(f"dgm {config['model']}", batches_per_epoch(len(data.train), batch_size)))
    with tempfile.TemporaryDirectory() as directory:
        run = fit(model, data, directory, progress=False, callbacks=[counter], **train)
    torch.set_num_threads(threads)  # as set before training, whatever Lightning did
    return {"model": f"dgm {config['model']}", "generator": run.model, "parameters": parameters(run.model),
            "seconds": run.seconds, "steps": counter.batches, "batch_size": batch_size}


# -- the benchmark ------------------------------------------------------------------------------------------------
def benchmark(name: str, config: dict, extractor: InceptionFeatures, args) -> str:
    data = load(name)
    check_samples(data, args.samples)
    seconds = 60 * args.minutes
    rows = [train_hand_written(data, seconds, args.seed),
            train_dgm(data, config, seconds, args.seed, args.threads)]
    test = test_statistics(extractor, data, args.samples)
    for row in rows:
        row["fid"] = model_fid(extractor, test, row, data, args.samples, args.seed)
        row["epochs"] = row["steps"] / batches_per_epoch(len(data.train), row["batch_size"])
    floor = floor_fid(extractor, test, data, args.samples)
    return table(name, rows, floor, config, extractor, args)


def table(name: str, rows: list[dict], floor: float, config: dict, extractor: InceptionFeatures, args) -> str:
    n, reference = args.samples, rows[0]["fid"]
    lines = [f"{name}: each model trained for {60 * args.minutes:.0f} s of wall clock on {args.threads} CPU thread(s) "
             f"({platform.node()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
             f"FID of {n} samples against the first {n} test images ({extractor.name} features).", "",
             "| model | parameters | train s | steps | ms/step | epochs | FID | FID / hand-written |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['seconds']:.0f} | {r['steps']} | "
                     f"{1000 * r['seconds'] / r['steps']:.1f} | {r['epochs']:.2f} | {r['fid']:.2f} | "
                     f"{r['fid'] / reference:.2f} |")
    lines += [f"| floor: {n} training images | | | | | | {floor:.2f} | |", "",
              f"dgm configuration: {json.dumps(config)}"]
    return "\n".join(lines) + "\n"


# -- speed --------------------------------------------------------------------------------------------------------
def per_step(step, batches) -> float:
    """Milliseconds per call of ``step`` on the next batches, over ``SPEED_STEPS`` calls after ``SPEED_WARMUP``."""
    for _ in range(SPEED_WARMUP):
        step(next(batches))
    started = time.perf_counter()
    for _ in range(SPEED_STEPS):
        step(next(batches))
    return 1000 * (time.perf_counter() - started) / SPEED_STEPS


def in_precision(step, precision: str):
    """``step`` run under the autocast of Lightning's ``precision``."""
    def autocast_step(images: Tensor) -> None:
        with autocast(precision, images.device):
            step(images)
    return autocast_step


def bare_loop_step(model, lr: float):
    """One batch of dgm's model as the trainer runs it (its updates with fused Adams), without Lightning."""
    optimizers = {group.name: torch.optim.Adam(group.parameters, lr=group.lr or lr, betas=group.betas, fused=True)
                  for group in model.optimizer_groups()}
    batches = 0

    def step(x: Tensor) -> None:
        nonlocal batches
        for name, losses in model.training_step(x, batches):
            optimizers[name].zero_grad()
            losses["loss"].backward()
            optimizers[name].step()
            model.after_update(name)
        batches += 1
    return step


class StepTimer(Callback):
    """Milliseconds per batch of ``fit`` over ``SPEED_STEPS`` batches after ``SPEED_WARMUP``; then stops it."""

    def __init__(self):
        self.batches, self.started, self.ms = 0, 0.0, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        if self.batches == SPEED_WARMUP:
            self.started = time.perf_counter()
        elif self.batches == SPEED_WARMUP + SPEED_STEPS:
            self.ms = 1000 * (time.perf_counter() - self.started) / SPEED_STEPS
            trainer.should_stop = True


def fit_step(data, config: dict, threads: int) -> float:
    model = dgm.create(config["model"], data=data, **config["model_options"])
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as directory:
        fit(model, data, directory, progress=False, callbacks=[timer], **config["train"])
    torch.set_num_threads(threads)
    return timer.ms


def speed(config: dict, args) -> str:
    data = load("mnist")
    torch.manual_seed(args.seed)
    gan = HandWrittenDCGAN(data.levels)
    model = dgm.create(config["model"], data=data, **config["model_options"]).train()
    size = fit_option(config, "batch_size")
    hand_written_batches = training_batches(data, BATCH, args.seed)
    dgm_batches = training_batches(data, size, args.seed)
    dgm_step = in_precision(bare_loop_step(model, fit_option(config, "lr")), fit_option(config, "precision"))
    cases = [  # (name, parameters, batch size, ms per step of one round)
        ("hand-written DCGAN, bare loop", gan.parameters(), BATCH, lambda: per_step(gan.step, hand_written_batches)),
        ("hand-written DCGAN, bare loop, bf16 autocast", gan.parameters(), BATCH,
         lambda: per_step(in_precision(gan.step, "bf16-mixed"), hand_written_batches)),
        (f"dgm {config['model']}, bare loop", parameters(model), size, lambda: per_step(dgm_step, dgm_batches)),
        (f"dgm {config['model']}, fit", parameters(model), size, lambda: fit_step(data, config, args.threads))]
    times: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _ in range(SPEED_ROUNDS):
        for name, _, _, measure in cases:
            times[name].append(measure())
            print(f"{name}: {times[name][-1]:.1f} ms/step", file=sys.stderr, flush=True)
    lines = [f"ms per step (critic + generator update) on MNIST, {args.threads} CPU thread(s), median of "
             f"{SPEED_ROUNDS} alternating rounds of {SPEED_STEPS} steps after {SPEED_WARMUP} of warm-up "
             f"({platform.node()}, torch {torch.__version__}):", "",
             "| model | parameters | batch | ms/step (median) | rounds |", "|---|---|---|---|---|"]
    for name, count, batch_size, _ in cases:
        lines.append(f"| {name} | {count:,} | {batch_size} | {statistics.median(times[name]):.1f} | "
                     f"{', '.join(f'{ms:.1f}' for ms in times[name])} |")
    return "\n".join(lines + ["", f"dgm configuration: {json.dumps(config)}"]) + "\n"


# -- main ---------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist", help="mnist, fashion-mnist, or both separated by a comma")
    parser.add_argument("--minutes", type=float, default=12.0, help="training wall-clock time of each model")
    parser.add_argument("--samples", type=int, default=10000, help="samples, test and training images of the FID")
    parser.add_argument("--recipe", help="take dgm's model, model options and training options from this recipe")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="20 s of training each and 200 samples")
    parser.add_argument("--speed", action="store_true", help="only time the steps of both models")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.samples = 20 / 60, 200
    torch.set_num_threads(args.threads)
    config = DGM_GAN if args.recipe is None else {key: load_recipe(args.recipe)[key]
                                                  for key in ("model", "model_options", "train")}
    if args.speed:
        print(speed(config, args))
        return
    extractor = InceptionFeatures()
    for name in args.data.split(","):
        print(benchmark(name.strip(), config, extractor, args), flush=True)


if __name__ == "__main__":
    main()
