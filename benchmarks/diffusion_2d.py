"""Likelihoods and modes of dgm's diffusion recipes on the 2D sets: the seven FFJORD toys and the 25 Gaussians.

For each recipe, in one process and one thread: train it with dgm's trainer for its own budget (5 CPU minutes),
then on ``--points`` test points compute the probability-flow NLL (``log_prob(x, method="ode")``, exact divergence,
dopri5 at 1e-5) and the variational bound (``method="vlb"``, all 1000 steps), both beside the data's differential
entropy ``H``, and the KL from the data to the model, ``E[log p(x) − log q(x)]`` on the same points with the true
density ``p``: the gap ``NLL − H`` without the spread of ``log p`` over the points (as benchmarks/flows_2d.py). On the
mixtures, 10 000 samples of the recipe's sampler are scored by VEEGAN's rule (modes with a sample within 3 standard
deviations of a centre, and the share of such samples).

    .venv/bin/python benchmarks/diffusion_2d.py                    # every ddpm-<toy> recipe (about 45 minutes)
    .venv/bin/python benchmarks/diffusion_2d.py ddpm-moons         # the named recipes only

The markdown table goes to stdout, and to ``--out`` between the markers ``<!-- begin/end benchmarks/diffusion_2d.py
-->`` if that file has them.
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
from dgm.training import fit, seed_everything
from doc_tables import write_between_markers  # benchmarks/doc_tables.py, beside this script

TOYS = ("moons", "circles", "rings", "8gaussians", "checkerboard", "2spirals", "pinwheel", "25gaussians")
SAMPLES = 10_000


def measure(name: str, seed: int, points: int) -> dict:
    """Train the recipe; its test NLL by the probability-flow ODE and by the bound, and its modes on mixtures."""
    recipe = load_recipe(name)
    data = load(recipe["data"], **recipe["data_options"])
    seed_everything(seed)
    model = dgm.create(recipe["model"], data=data, **recipe["model_options"])
    with tempfile.TemporaryDirectory() as directory:
        run = fit(model, data, directory, progress=False, seed=seed, **recipe["train"])
    model, test = run.model.eval(), data.test[:points]
    started = time.perf_counter()
    with torch.no_grad():
        log_q = model.log_prob(test, method="ode").double()
    ode_seconds = time.perf_counter() - started
    with torch.no_grad():
        bound_nll = -model.log_prob(test, method="vlb", timesteps=model.schedule.steps).mean().item()
    gap = data.distribution.log_prob(test.double()) - log_q
    row = {"recipe": name, "entropy": data.distribution.entropy(), "ode_nll": -log_q.mean().item(),
           "kl": gap.mean().item(), "kl_se": gap.std().item() / len(test) ** 0.5, "bound_nll": bound_nll,
           "ode_seconds": ode_seconds, "seconds": run.seconds, "steps": run.step}
    if recipe["data"] in ("8gaussians", "25gaussians"):
        with torch.no_grad():
            samples = model.sample(SAMPLES)
        centres, std = mixture_modes(data)
        row.update(mode_metrics(samples, centres, std))
    return row


def table(rows: list[dict]) -> str:
    lines = ["| recipe | entropy H | probability-flow NLL | KL(data ‖ model) | bound (−VLB) | "
             "modes, high-quality samples | optimizer steps | training seconds | ODE seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        modes = (f"{row['modes_covered']} / {row['modes']}, {row['high_quality']:.1%}" if "modes" in row else "")
        lines.append(f"| `{row['recipe']}` | {row['entropy']:.4f} | {row['ode_nll']:.4f} | "
                     f"{row['kl']:.4f} ± {row['kl_se']:.4f} | {row['bound_nll']:.4f} | {modes} | {row['steps']} | "
                     f"{row['seconds']:.0f} | {row['ode_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=[f"ddpm-{toy}" for toy in TOYS])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points", type=int, default=5000, help="test points for the likelihoods")
    parser.add_argument("--out", type=Path, help="a markdown file with the markers to write the table between")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.recipes:
        rows.append(measure(name, args.seed, args.points))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    if args.out:
        write_between_markers(args.out, "diffusion_2d.py", table(rows))


if __name__ == "__main__":
    main()
