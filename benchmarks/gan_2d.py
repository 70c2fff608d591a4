"""Mode coverage of dgm's 2D GAN recipes: every loss on the 25 Gaussians of WGAN-GP, and homework 5's on 8 Gaussians.

For each recipe, in one process and one thread: train it with dgm's trainer for its own budget (3 CPU minutes for
the 25-Gaussian ones), draw 10 000 samples and count, by VEEGAN's rule (:mod:`dgm.metrics.modes`), the modes that
receive a high-quality sample (within 3 standard deviations of a centre) and the share of high-quality samples;
then the same for 10 000 samples of discriminator rejection sampling (:mod:`dgm.models.adversarial.rejection`),
calibrated as ``fit`` does at the end of training (on the training points it gives; with the recipe's
``calibration_steps``, the critic fine-tuned on half of them first), with its acceptance rate. The seconds are
those of all of ``fit``, the calibration included.
PacGAN's anchor on the same grid: a GAN finds about 17 of 25 modes, its best packing about 24.

    .venv/bin/python benchmarks/gan_2d.py                         # every recipe below (about 45 minutes)
    .venv/bin/python benchmarks/gan_2d.py wgan-gp-25gaussians     # the named recipes only

The markdown table goes to stdout, and to ``--out`` between the markers ``<!-- begin/end benchmarks/gan_2d.py -->``
if that file has them.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import dgm
from dgm.data import load
from dgm.metrics import mode_metrics
from dgm.metrics.quality import mixture_modes
from dgm.recipes import load_recipe
from dgm.run_folder import RunFolder
from dgm.training import TrainingDiverged, fit, seed_everything
from doc_tables import write_between_markers  # benchmarks/doc_tables.py, beside this script

RECIPES = ("gan-25gaussians", "minimax-gan-25gaussians", "lsgan-25gaussians", "wgan-25gaussians",
           "wgan-gp-25gaussians", "sngan-25gaussians", "r1-gan-25gaussians", "fgan-kl-25gaussians",
           "fgan-reverse-kl-25gaussians", "fgan-pearson-25gaussians", "fgan-squared-hellinger-25gaussians",
           "fgan-jensen-shannon-25gaussians", "fgan-total-variation-25gaussians", "hw5-wgan-8gaussians",
           "hw5-wgan-gp-8gaussians")
SAMPLES = 10_000


def measure(name: str, seed: int) -> dict:
    """Train the recipe and return its mode coverage on ``SAMPLES`` samples, raw and rejection-sampled by the
    calibration ``fit`` ends with, with its steps and seconds (``seconds``: all of ``fit``, the calibration too)."""
    recipe = load_recipe(name)
    data = load(recipe["data"], **recipe["data_options"])
    seed_everything(seed)
    model = dgm.create(recipe["model"], data=data, **recipe["model_options"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        try:
            run = fit(model, data, directory, progress=False, seed=seed, **recipe["train"])
        except TrainingDiverged as error:
            return {"recipe": name, "diverged": str(error).split(";")[0]}
        seconds = time.perf_counter() - started
        calibration = RunFolder(directory).read_record()["after_training"]["rejection"]
    model = run.model.eval()
    centres, std = mixture_modes(data)
    with torch.no_grad():
        samples = model.sample(SAMPLES)
        kept = mode_metrics(model.sample(SAMPLES, rejection=True), centres, std)
    return {"recipe": name, "seconds": seconds, "batches": run.step, **mode_metrics(samples, centres, std),
            "rejection_modes": kept["modes_covered"], "rejection_high_quality": kept["high_quality"],
            "acceptance": calibration["acceptance"]}


def table(rows: list[dict]) -> str:
    lines = ["| recipe | modes covered | high-quality samples | fewest / most per mode | optimizer steps | seconds "
             "| with rejection: modes | high-quality | acceptance |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "diverged" in row:
            lines.append(f"| `{row['recipe']}` | {row['diverged']} | | | | | | | |")
            continue
        counts = row["mode_counts"]
        lines.append(f"| `{row['recipe']}` | {row['modes_covered']} / {row['modes']} | {row['high_quality']:.1%} | "
                     f"{min(counts)} / {max(counts)} | {row['batches']} | {row['seconds']:.0f} | "
                     f"{row['rejection_modes']} / {row['modes']} | {row['rejection_high_quality']:.1%} | "
                     f"{row['acceptance']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="a markdown file with the markers to write the table between")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.recipes:
        rows.append(measure(name, args.seed))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    print(text)
    if args.out is not None:
        write_between_markers(args.out, "gan_2d.py", text)


if __name__ == "__main__":
    main()
