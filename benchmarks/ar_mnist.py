"""Autoregressive image models trained on the same data for the same time, one table of test NLLs.

Each model is trained with dgm's trainer for ``--minutes`` of wall time on ``--data`` (binarized MNIST by default),
with the model and training options of its recipe ``<model>-<data>`` where one exists (the recipe's stop condition
is replaced by the time budget), then evaluated on the test set (its first ``--test-examples`` for a quick check).
The table (nats per image for binary data, bits per dimension for 8-bit data, both always) is printed as one JSON
line and written into ``docs/autoregressive.md`` between the markers of its section. Models that are not registered
are listed as such.

Each model trains in its own process with ``--threads`` threads (one by default: on a shared machine one thread
trains faster); ``--jobs`` processes run at once. With ``--jobs`` equal to the number of models, all train during
the same minutes and share the machine alike, the fairest comparison on a noisy machine; the table records the CPU
seconds each process got.

    .venv/bin/python benchmarks/ar_mnist.py --minutes 30 --jobs 4 [--models pixelcnn gated-pixelcnn ...]
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

import dgm
from dgm.api import list_models
from dgm.data import load
from dgm.recipes import list_recipes, load_recipe
from dgm.metrics.likelihood import log_likelihoods, nll_summary
from dgm.training import fit, seed_everything

DOCS = Path(__file__).resolve().parents[1] / "docs" / "autoregressive.md"
BEGIN, END = "<!-- ar_mnist table: begin -->", "<!-- ar_mnist table: end -->"
STOP_OPTIONS = ("max_epochs", "max_steps", "max_time")


def train_and_evaluate(name: str, data_name: str, minutes: float, out: Path, seed: int, test_examples: int | None,
                       threads: int) -> dict:
    """Train ``name`` for ``minutes`` (its recipe's options for the data set where it has one) with ``threads``
    threads and evaluate it."""
    torch.set_num_threads(threads)
    data = load(data_name)
    recipe = f"{name}-{data.name}"
    plan = load_recipe(recipe) if recipe in list_recipes() else {"model_options": {}, "train": {}}
    seed_everything(seed)
    model = dgm.create(name, data=data, **plan["model_options"])
    options = {key: value for key, value in plan["train"].items() if key not in STOP_OPTIONS}
    test = data.test if test_examples is None else data.test[:test_examples]
    if test_examples is not None:
        options["eval_batches"] = math.ceil(test_examples / options.get("batch_size", 128))
    cpu_start = time.process_time()
    run = fit(model, data, out / name, max_time=minutes * 60, seed=seed, progress=False,
              **options)
    cpu_seconds = time.process_time() - cpu_start
    metrics = nll_summary(log_likelihoods(run.model, test, batch_size=500), data.dim, run.model.likelihood)
    return {"model": name, "recipe": recipe if recipe in list_recipes() else None,
            "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(run.seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),
            "nll_nats": round(metrics["nll_nats"], 2), "nll_stderr": round(metrics["nll_stderr"], 2),
            "bits_per_dim": round(metrics["bits_per_dim"], 4), "run": str(run.directory)}


def markdown_table(rows: list[dict], data: str, minutes: float, command: str, jobs: int) -> str:
    lines = [f"Test NLL on `{data}` after {minutes:g} minutes of training each, {jobs} at a time (`{command}`; "
             f"{time.strftime('%Y-%m-%d')}, 2 shared CPU cores).", "",
             "| model | parameters | training (s) | CPU (s) | test NLL (nats/image) | bits/dim |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if "nll_nats" in row:
            lines.append(f"| {row['model']} | {row['parameters']:,} | {row['train_seconds']:.0f} | "
                         f"{row['cpu_seconds']:.0f} | {row['nll_nats']:.2f} ± {row['nll_stderr']:.2f} | "
                         f"{row['bits_per_dim']:.4f} |")
        else:
            lines.append(f"| {row['model']} | – | – | – | {row['status']} | – |")
    return "\n".join(lines)


def write_section(table: str, path: Path = DOCS) -> Path:
    """Replace the text between the table's markers in ``path`` (appended, with the markers, if absent)."""
    text = path.read_text() if path.exists() else "# Autoregressive image models\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time of each model")
    parser.add_argument("--models", nargs="+", default=["pixelcnn", "gated-pixelcnn", "pixelcnn++", "pixelsnail"])
    parser.add_argument("--data", default="mnist-binary")
    parser.add_argument("--out", type=Path, default=Path("runs/ar-mnist"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-examples", type=int, help="evaluate on the first N test examples (default: all)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the Markdown file that receives the table")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once, each in its own process")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each model's process")
    args = parser.parse_args()
    if args.minutes <= 0 or args.jobs < 1 or args.threads < 1:
        raise SystemExit("--minutes, --jobs and --threads must be positive")
    known = list_models()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = {name: pool.submit(train_and_evaluate, name, args.data, args.minutes, args.out, args.seed,
                                  args.test_examples, args.threads) for name in args.models if name in known}
        rows = [runs[name].result() if name in runs else {"model": name, "status": "not registered"}
                for name in args.models]
    command = (f"python benchmarks/ar_mnist.py --minutes {args.minutes:g} --jobs {args.jobs} --threads "
               f"{args.threads} --models {' '.join(args.models)}")
    if args.test_examples is not None:
        command += f" --test-examples {args.test_examples}"
    write_section(markdown_table(rows, args.data, args.minutes, command, args.jobs), args.docs)
    print(json.dumps({"data": args.data, "minutes": args.minutes, "rows": rows}))


if __name__ == "__main__":
    main()
