"""dgm's DDPM against diffusers' ``UNet2DModel`` and ``DDPMScheduler`` at equal wall-clock time on MNIST, scored by FID.

In one process, on the same data, with ``--threads`` CPU threads (1 by default), the same seed and the same
training budget of ``--minutes`` of wall clock each, both at the batch size, learning rate and EMA decay of dgm's
recipe ``ddpm-mnist`` (64, 1e-3, 0.9995):

- diffusers (installed for benchmarks only, used only in this file), written as its training recipe has it:
  ``UNet2DModel(sample_size=28, in_channels=1, out_channels=1)`` with ``block_out_channels=(32, 64, 64)``, one
  layer per block, attention in the 7x7 down and up blocks and the middle block, 8 groups and one attention head
  (:data:`UNET`): DDPM's U-Net on the full 28x28 image, 1 112 801 parameters, where the recipe's U-Net (1 133 636)
  runs on 2x2 patches in bfloat16 (the choices for a CPU budget that the comparison is about); diffusers trains in
  float32, its default (``--speed`` also times it under bf16 autocast);
  ``DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")``; images scaled to [-1, 1], a step drawn
  uniformly, ``scheduler.add_noise`` and the MSE between the predicted and the drawn noise; ``AdamW`` at the
  recipe's learning rate (PyTorch's defaults otherwise, as in diffusers' training tutorial: weight decay 0.01, the
  foreach kernel), constant, no gradient clipping; diffusers' ``EMAModel`` of the weights with the recipe's decay as
  its maximum and the warm-up of diffusers' ``train_unconditional.py`` (``use_ema_warmup=True``, ``inv_gamma=1``,
  ``power=3/4``: the decay grows as ``1 − (1 + step)^(−3/4)`` up to 0.9995). A bare loop over shuffled batches, the
  EMA weights sampled. Sampling: ``DDIMScheduler.from_config`` of the training scheduler, ``set_timesteps(50)``
  (diffusers' default "leading" spacing, 980 … 0), η = 0, the model's ``x̂_0`` clipped to [-1, 1] (the scheduler's
  default ``clip_sample``), the output rounded to the data's levels 0..255.
- dgm: the recipe ``ddpm-mnist`` (:func:`dgm.recipes.load_recipe`): ``dgm.create("ddpm", data=data, **model_options)``
  trained by ``dgm.training.fit(..., max_time=budget, **train)``, the library's public path, its other training
  options kept (fused Adam, constant learning rate, the EMA of the weights with the trainer's warm-up
  ``min(0.9995, (1 + n)/(10 + n))``), its stop replaced by the budget. Its seconds are the trainer's: Lightning, the
  EMA, checkpoints and the per-epoch test evaluation included. Sampled in the recipe's precision by
  ``model.sample(n, sampler="ddim", steps=50)`` (η = 0, "trailing" spacing from t = 1). The recipe's own sampler,
  DPM-Solver++(2M) with 20 steps, is measured by benchmarks/diffusion_mnist.py.

FID by the protocol of benchmarks/image_fid.py, as ``dgm evaluate --metrics fid`` computes it: ``--samples`` N
samples of each model in the data's convention against the first N test images on the TF-FID InceptionV3 features
(test and training features cached in ``$DGM_CACHE/reference``); with ``--floor``, also the FID of the first N
training images. Seconds per 1000 samples are those of the N samples, drawn in batches of 500. With 10 000 samples
a run is long: diffusers' 50 DDIM steps draw 1000 images in about 4 minutes on one thread (dgm's in about one), plus 15
minutes of Inception features per row (and for the floor) and the two 12-minute trainings: about 1.7 hours.

    .venv/bin/python benchmarks/ddpm_diffusers.py                       # 12 minutes each, 10 000 samples
    .venv/bin/python benchmarks/ddpm_diffusers.py --floor               # and the FID of 10 000 training images
    .venv/bin/python benchmarks/ddpm_diffusers.py --out docs/diffusion.md   # also between its markers (below)
    .venv/bin/python benchmarks/ddpm_diffusers.py --smoke               # 20 s each, 200 samples: the path works
    .venv/bin/python benchmarks/ddpm_diffusers.py --speed               # ms per step and sampling time only

``--speed`` times, in the same process and alternating, 20 training steps at batch 64 after warm-up of diffusers'
network in its bare loop (its EMA update included; in float32 and under bf16 autocast), of dgm's model in the same
bare loop (its ``loss`` and the trainer's fused Adam, no Lightning, no EMA; in the recipe's precision) and of dgm's
model through ``fit``; then 50-step DDIM sampling of 100
images by both (and dgm's 20-step DPM-Solver++), in seconds per 1000 samples.

The markdown table goes to stdout, and with ``--out FILE`` between the markers
``<!-- begin benchmarks/ddpm_diffusers.py -->`` and ``<!-- end benchmarks/ddpm_diffusers.py -->``, which the file
must have.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from torch import Tensor

import dgm
from dgm.data import load
from dgm.metrics.features import InceptionFeatures
from dgm.recipes import load_recipe
from dgm.training.progress import batches_per_epoch
from doc_tables import write_between_markers  # benchmarks/doc_tables.py, beside this script
from gan_dcgan import (SPEED_STEPS, SPEED_WARMUP, bare_loop, bare_loop_step, fit_option, fit_step,  # beside this
                       in_precision, parameters, per_step, train_dgm, training_batches)
from image_fid import (WithSampleOptions, check_samples, fid, floor_fid, test_statistics,  # beside this script
                       timed_samples)

RECIPE = "ddpm-mnist"
UNET = {"block_out_channels": (32, 64, 64), "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "norm_num_groups": 8, "attention_head_dim": 64}  # dgm's U-Net: 8 groups, one head of 64 channels
TRAIN_TIMESTEPS = 1000
EMA_WARMUP = {"use_ema_warmup": True, "inv_gamma": 1.0, "power": 3 / 4}  # diffusers' train_unconditional.py
DDIM_STEPS = 50
DDIM = f"DDIM, {DDIM_STEPS} steps, η = 0"
SPEED_SAMPLES, SPEED_ROUNDS = 100, 2


# -- diffusers ----------------------------------------------------------------------------------------------------
class DiffusersDDPM:
    """diffusers' U-Net, its DDPM scheduler, AdamW and the EMA of the weights; one training step on a batch."""

    def __init__(self, levels: int, lr: float, ema_decay: float):
        self.levels = levels
        self.unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, **UNET)
        self.scheduler = DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="linear")
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=lr)
        self.ema = EMAModel(self.unet.parameters(), decay=ema_decay, foreach=True, **EMA_WARMUP)

    def step(self, images: Tensor) -> None:
        """One update on ``images`` in the data's convention (0..levels−1)."""
        clean = images * (2 / (self.levels - 1)) - 1
        noise = torch.randn_like(clean)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(clean),))
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        loss = F.mse_loss(self.unet(noisy, timesteps, return_dict=False)[0], noise)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.ema.step(self.unet.parameters())

    def averaged(self) -> DDIMSampling:
        """The sampler of the EMA weights (copied into the network: training is over)."""
        self.ema.copy_to(self.unet.parameters())
        return DDIMSampling(self.unet.eval(), self.scheduler, self.levels)


class DDIMSampling:
    """diffusers' DDIM loop on a trained U-Net; ``sample(n)`` gives images in the data's convention."""

    def __init__(self, unet: UNet2DModel, training_scheduler: DDPMScheduler, levels: int):
        self.unet, self.training_scheduler, self.levels = unet, training_scheduler, levels

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        scheduler = DDIMScheduler.from_config(self.training_scheduler.config)
        scheduler.set_timesteps(DDIM_STEPS)
        size = self.unet.config.sample_size
        image = torch.randn(n, self.unet.config.in_channels, size, size)
        for t in scheduler.timesteps:
            noise_pred = self.unet(image, t, return_dict=False)[0]
            image = scheduler.step(noise_pred, t, image, eta=0.0).prev_sample
        return ((image.clamp(-1, 1) + 1) * ((self.levels - 1) / 2)).round()


def recipe_config() -> dict:
    recipe = load_recipe(RECIPE)
    return {key: recipe[key] for key in ("model", "model_options", "train")}


def diffusers_model(data, config: dict) -> DiffusersDDPM:
    return DiffusersDDPM(data.levels, fit_option(config, "lr"), config["train"]["ema_decay"])


def recipe_sampler(config: dict) -> str:
    options = config["model_options"]
    return f"{options['sampler']}, {options['sampler_options']['steps']} steps (the recipe's)"


def print_parameters(diffusers_count: int, dgm_count: int) -> None:
    print(f"parameters: diffusers UNet2DModel {diffusers_count:,}, dgm {RECIPE} {dgm_count:,} "
          f"(ratio {diffusers_count / dgm_count:.4f})", file=sys.stderr, flush=True)


# -- training -----------------------------------------------------------------------------------------------------
def train_diffusers(data, config: dict, seconds: float, seed: int) -> dict:
    torch.manual_seed(seed)
    model = diffusers_model(data, config)
    batch_size = fit_option(config, "batch_size")
    steps, spent = bare_loop(model.step, data, batch_size, seconds, seed, "diffusers")
    return {"model": "diffusers UNet2DModel + DDPMScheduler", "parameters": parameters(model.unet),
            "seconds": spent, "steps": steps, "batch_size": batch_size, "samplers": [(DDIM, model.averaged())]}


def benchmark(config: dict, extractor: InceptionFeatures, args) -> str:
    data = load("mnist")
    check_samples(data, args.samples)
    seconds = 60 * args.minutes
    reference = train_diffusers(data, config, seconds, args.seed)
    ours = train_dgm(data, config, seconds, args.seed, args.threads)
    precision = fit_option(config, "precision")
    print_parameters(reference["parameters"], ours["parameters"])
    ours |= {"model": f"dgm ddpm (recipe {RECIPE})",
             "samplers": [(DDIM, WithSampleOptions(ours["generator"], precision, sampler="ddim", steps=DDIM_STEPS))]}
    test = test_statistics(extractor, data, args.samples)
    rows = []
    for trained in (reference, ours):
        trained["epochs"] = trained["steps"] / batches_per_epoch(len(data.train), trained["batch_size"])
        for sampler, model in trained.pop("samplers"):
            samples, sampling = timed_samples(model, args.samples, args.seed, f"{trained['model']}, {sampler}")
            rows.append(trained | {"sampler": sampler, "sample_seconds": 1000 * sampling / args.samples,
                                   "fid": fid(extractor, test, samples, data)})
    floor = f"{floor_fid(extractor, test, data, args.samples):.2f}" if args.floor else "not measured"
    return table(rows, floor, config, extractor, args)


def table(rows: list[dict], floor: str, config: dict, extractor: InceptionFeatures, args) -> str:
    n, reference = args.samples, rows[0]["fid"]
    lines = [f"MNIST: each model trained for {60 * args.minutes:.0f} s of wall clock on {args.threads} CPU thread(s) "
             f"({platform.node()}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); FID of {n} samples against the first {n} test "
             f"images ({extractor.name} features).", "",
             "| model | parameters | train s | steps | ms/step | epochs | sampler | seconds per 1000 samples | FID | "
             "FID / diffusers |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['seconds']:.0f} | {r['steps']} | "
                     f"{1000 * r['seconds'] / r['steps']:.1f} | {r['epochs']:.2f} | {r['sampler']} | "
                     f"{r['sample_seconds']:.0f} | {r['fid']:.2f} | {r['fid'] / reference:.2f} |")
    lines += [f"| floor: {n} training images | | | | | | | | {floor} | |", "",
              f"dgm configuration: {json.dumps(config)}", "",
              f"diffusers configuration: {json.dumps(UNET)}, EMA warm-up {json.dumps(EMA_WARMUP)}"]
    return "\n".join(lines) + "\n"


# -- speed --------------------------------------------------------------------------------------------------------
def sampling_seconds(model, seed: int) -> float:
    """Seconds per 1000 samples of ``model.sample`` on a batch of ``SPEED_SAMPLES``."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    model.sample(SPEED_SAMPLES)
    return 1000 * (time.perf_counter() - started) / SPEED_SAMPLES


def speed(config: dict, args) -> str:
    data = load("mnist")
    torch.manual_seed(args.seed)
    reference = diffusers_model(data, config)
    model = dgm.create(config["model"], data=data, **config["model_options"]).train()
    print_parameters(parameters(reference.unet), parameters(model))
    size = fit_option(config, "batch_size")
    reference_batches, dgm_batches = training_batches(data, size, args.seed), training_batches(data, size, args.seed)
    precision = fit_option(config, "precision")
    dgm_step = in_precision(bare_loop_step(model, fit_option(config, "lr")), precision)
    cases = [  # (name, parameters, ms per step of one round)
        ("diffusers UNet2DModel, bare loop (AdamW, EMA)", parameters(reference.unet),
         lambda: per_step(reference.step, reference_batches)),
        ("diffusers UNet2DModel, bare loop, bf16 autocast", parameters(reference.unet),
         lambda: per_step(in_precision(reference.step, "bf16-mixed"), reference_batches)),
        (f"dgm ddpm, bare loop (loss, fused Adam, {precision})", parameters(model),
         lambda: per_step(dgm_step, dgm_batches)),
        ("dgm ddpm, fit", parameters(model), lambda: fit_step(data, config, args.threads))]
    times: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _ in range(SPEED_ROUNDS):
        for name, _, measure in cases:
            times[name].append(measure())
            print(f"{name}: {times[name][-1]:.1f} ms/step", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians[cases[0][0]]
    lines = [f"ms per training step at batch {size} on MNIST, {args.threads} CPU thread(s), median of {SPEED_ROUNDS} "
             f"alternating rounds of {SPEED_STEPS} steps after {SPEED_WARMUP} of warm-up ({platform.node()}, "
             f"torch {torch.__version__}, diffusers {diffusers.__version__}):", "",
             "| model | parameters | ms/step (median) | rounds | / diffusers |", "|---|---|---|---|---|"]
    for name, count, _ in cases:
        lines.append(f"| {name} | {count:,} | {medians[name]:.1f} | "
                     f"{', '.join(f'{ms:.1f}' for ms in times[name])} | {medians[name] / base:.3f} |")

    model.eval()
    samplers = [("diffusers UNet2DModel", DDIM, DDIMSampling(reference.unet.eval(), reference.scheduler, data.levels)),
                ("dgm ddpm", DDIM, WithSampleOptions(model, precision, sampler="ddim", steps=DDIM_STEPS)),
                ("dgm ddpm", recipe_sampler(config), WithSampleOptions(model, precision))]
    lines += ["", f"Sampling {SPEED_SAMPLES} images in one batch (the weights after the timed steps; the time does not "
              "depend on them):", "", "| model | sampler | seconds per 1000 samples | / diffusers |",
              "|---|---|---|---|"]
    base = None
    for name, sampler, sampling in samplers:
        seconds = sampling_seconds(sampling, args.seed)
        base = base or seconds
        print(f"{name}, {sampler}: {seconds:.0f} s per 1000 samples", file=sys.stderr, flush=True)
        lines.append(f"| {name} | {sampler} | {seconds:.1f} | {seconds / base:.3f} |")
    return "\n".join(lines + ["", f"dgm configuration: {json.dumps(config)}"]) + "\n"


# -- main ---------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="training wall-clock time of each model")
    parser.add_argument("--samples", type=int, default=10000, help="samples, test and training images of the FID")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="a markdown file with the markers to write the table between")
    parser.add_argument("--floor", action="store_true", help="also the FID of N training images (15 minutes)")
    parser.add_argument("--smoke", action="store_true", help="20 s of training each and 200 samples")
    parser.add_argument("--speed", action="store_true", help="only time the training steps and the sampling")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.samples = 20 / 60, 200
    torch.set_num_threads(args.threads)
    config = recipe_config()
    if args.speed:
        print(speed(config, args))
        return
    text = benchmark(config, InceptionFeatures(), args)
    print(text, flush=True)
    if args.out:
        write_between_markers(args.out, "ddpm_diffusers.py", text)


if __name__ == "__main__":
    main()
