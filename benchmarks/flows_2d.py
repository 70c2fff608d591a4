"""The 2D density benchmark of flows: dgm's recipe ``flow-<data set>`` against zuko's NSF at equal wall-clock time.

For each data set, in one process: train the recipe with dgm's trainer and time it; train zuko's neural spline flow
(5 transforms, 8 bins, hidden 64x64, Adam 1e-3 with a cosine decay over the same number of seconds, batch 512) on the
same training set for that same time; then draw 20 000 fresh samples from the exact generator and report, paired on
those samples,

    NLL = −mean log q(x)        and        KL(p ‖ q) ≈ mean(log p(x) − log q(x)) ± its standard error,

with the data's differential entropy ``H = NLL − KL`` in expectation. The markdown table goes to ``--out``,
between the markers ``<!-- begin/end benchmarks/flows_2d.py -->`` if the file has them.

    .venv/bin/python benchmarks/flows_2d.py                              # all seven sets, the recipes' budgets
    .venv/bin/python benchmarks/flows_2d.py --data moons --steps 2000    # a short check

``--steps`` replaces each recipe's number of training steps (its cosine schedule shrinks with it); zuko always
gets the seconds dgm used. Both train with ``--threads`` CPU threads.
"""
from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import torch
import zuko

import dgm
from dgm.data import load
from dgm.recipes import load_recipe
from dgm.training import fit

DATASETS = ("moons", "circles", "8gaussians", "checkerboard", "2spirals", "pinwheel", "rings")
TEST_SAMPLES = 20_000
TEST_SEED = 2026
ZUKO = {"transforms": 5, "bins": 8, "hidden_features": (64, 64), "lr": 1e-3, "batch_size": 512}


def train_dgm(name: str, steps: int | None) -> tuple[object, float, object]:
    """The recipe's model trained by ``dgm.fit``; also the training seconds and the data."""
    recipe = load_recipe(f"flow-{name}")
    data = load(recipe["data"], **recipe["data_options"])
    model = dgm.create(recipe["model"], data=data, **recipe["model_options"])
    options = {**recipe["train"], **({} if steps is None else {"max_steps": steps})}
    with tempfile.TemporaryDirectory() as directory:
        run = fit(model, data, directory, progress=False, **options)
    return run.model.eval(), run.seconds, data


def train_zuko(train: torch.Tensor, seconds: float, seed: int = 0) -> tuple[zuko.flows.Flow, int]:
    """zuko's NSF trained for ``seconds`` with the learning rate on a cosine of the elapsed time; and its steps."""
    torch.manual_seed(seed)
    flow = zuko.flows.NSF(features=2, transforms=ZUKO["transforms"], bins=ZUKO["bins"],
                          hidden_features=ZUKO["hidden_features"])
    optimizer = torch.optim.Adam(flow.parameters(), lr=ZUKO["lr"])
    steps, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for group in optimizer.param_groups:
            group["lr"] = ZUKO["lr"] * 0.5 * (1 + math.cos(math.pi * elapsed / seconds))
        batch = train[torch.randint(len(train), (ZUKO["batch_size"],))]
        optimizer.zero_grad()
        (-flow().log_prob(batch).mean()).backward()
        optimizer.step()
        steps += 1
    return flow.eval(), steps


@torch.no_grad()
def paired_scores(log_q, x: torch.Tensor, log_p: torch.Tensor) -> dict[str, float]:
    """NLL and KL with standard errors, ``log_q`` evaluated in batches."""
    log_q_x = torch.cat([log_q(batch).double() for batch in x.split(5000)])
    gap = log_p - log_q_x
    root_n = math.sqrt(len(x))
    return {"nll": -log_q_x.mean().item(), "nll_se": log_q_x.std().item() / root_n,
            "kl": gap.mean().item(), "kl_se": gap.std().item() / root_n}


def benchmark(name: str, steps: int | None) -> dict:
    model, seconds, data = train_dgm(name, steps)
    flow, zuko_steps = train_zuko(data.train, seconds)
    distribution = data.distribution
    x = distribution.sample(TEST_SAMPLES, torch.Generator().manual_seed(TEST_SEED))
    log_p = distribution.log_prob(x.double())
    return {"data": name, "entropy": distribution.entropy(), "seconds": seconds, "zuko_steps": zuko_steps,
            "model": model.model_name, "dgm": paired_scores(model.log_prob, x, log_p),
            "zuko": paired_scores(lambda batch: flow().log_prob(batch), x, log_p)}


def table(results: list[dict], command: str) -> str:
    lines = [f"Produced by `{command}` on {platform.node()} ({torch.get_num_threads()} CPU thread(s), "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). Test NLL in nats on {TEST_SAMPLES} fresh "
             "samples of the exact generator; KL(p‖q) = mean(log p − log q) paired on the same samples (± standard "
             "error), so NLL = H + KL up to sampling noise. zuko: NSF with 5 transforms, 8 bins, hidden 64x64, "
             "Adam 1e-3 with cosine decay, batch 512, trained for the seconds dgm took.", "",
             "| data | entropy H | dgm model | dgm NLL | zuko NLL | dgm KL | zuko KL | seconds | zuko steps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        dgm_scores, zuko_scores = r["dgm"], r["zuko"]
        lines.append(f"| {r['data']} | {r['entropy']:.4f} | {r['model']} | {dgm_scores['nll']:.4f} | "
                     f"{zuko_scores['nll']:.4f} | {dgm_scores['kl']:.4f} ± {dgm_scores['kl_se']:.4f} | "
                     f"{zuko_scores['kl']:.4f} ± {zuko_scores['kl_se']:.4f} | {r['seconds']:.0f} | "
                     f"{r['zuko_steps']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--steps", type=int, default=None, help="training steps instead of each recipe's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/flows-2d.md"))
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    results = []
    for name in arguments.data:
        results.append(benchmark(name, arguments.steps))
        print(table(results[-1:], "").splitlines()[-1], flush=True)
    command = "python benchmarks/flows_2d.py"
    if arguments.data != list(DATASETS):
        command += " --data " + " ".join(arguments.data)
    if arguments.steps is not None:
        command += f" --steps {arguments.steps}"
    command += f" --threads {arguments.threads}"
    write_section(arguments.out, table(results, command))
    print(f"wrote {arguments.out}")


def write_section(path: Path, text: str) -> None:
    """Put ``text`` between the benchmark's markers in ``path`` (other text stays), or start the file with it."""
    begin, end = "<!-- begin benchmarks/flows_2d.py -->\n", "<!-- end benchmarks/flows_2d.py -->\n"
    old = path.read_text() if path.exists() else ""
    before, found, rest = old.partition(begin)
    after = rest.partition(end)[2] if found else old
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(before + begin + text + end + after if found else begin + text + end + after)


if __name__ == "__main__":
    main()
