"""Training step time of dgm's flows against zuko's, same sizes, same process: the ratio dgm ÷ zuko (goal ≤ 1).

Pairs (D-dimensional data, ``--layers`` transforms with hidden layers 64x64, batch ``--batch``):

* ``maf``: dgm ``maf`` against ``zuko.flows.MAF`` (affine MADE layers, ordering reversed between layers);
* ``realnvp``: dgm ``realnvp`` against ``zuko.flows.RealNVP`` (affine couplings on alternating halves);
* ``nsf``: dgm ``nsf`` with ``autoregressive=True`` against ``zuko.flows.NSF`` (8-bin spline MADE layers).

One step is a forward pass of the negative log-likelihood, its backward pass and an Adam update. The two libraries'
steps alternate in ``--rounds`` blocks of ``--steps`` steps, and each side's time per step is its median block, so
that load from other processes on this shared machine hits both alike. Prints one line per pair.

    .venv/bin/python benchmarks/flow_speed.py [--dim 8] [--batch 512] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import zuko

import dgm

HIDDEN = [64, 64]


def pairs(dim: int, layers: int) -> dict[str, tuple[torch.nn.Module, torch.nn.Module]]:
    """``name → (dgm model, zuko flow)`` of the same architecture and size."""
    zuko_hidden = tuple(HIDDEN)
    return {
        "maf": (dgm.create("maf", (dim,), n_layers=layers, hidden=HIDDEN),
                zuko.flows.MAF(dim, transforms=layers, hidden_features=zuko_hidden)),
        "realnvp": (dgm.create("realnvp", (dim,), n_layers=layers, hidden=HIDDEN),
                    zuko.flows.RealNVP(dim, transforms=layers, hidden_features=zuko_hidden)),
        "nsf": (dgm.create("nsf", (dim,), n_layers=layers, hidden=HIDDEN, bins=8, bound=5.0, autoregressive=True),
                zuko.flows.NSF(dim, transforms=layers, bins=8, hidden_features=zuko_hidden)),
    }


def trainer(parameters, negative_log_likelihood, x: torch.Tensor):
    """A function running ``steps`` Adam steps on the batch ``x`` and returning the seconds they took."""
    optimizer = torch.optim.Adam(parameters, lr=1e-4)

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            negative_log_likelihood(x).backward()
            optimizer.step()
        return time.perf_counter() - started
    return run


def compare(model, flow, x: torch.Tensor, steps: int, rounds: int) -> tuple[float, float]:
    """Median milliseconds per step of dgm's model and of zuko's flow, their blocks alternating."""
    run_dgm = trainer(model.parameters(), lambda batch: model.loss(batch)["loss"], x)
    run_zuko = trainer(flow.parameters(), lambda batch: -flow().log_prob(batch).mean(), x)
    run_dgm(5), run_zuko(5)  # warm-up
    dgm_blocks, zuko_blocks = [], []
    for _ in range(rounds):
        dgm_blocks.append(run_dgm(steps))
        zuko_blocks.append(run_zuko(steps))
    return (1e3 * statistics.median(dgm_blocks) / steps, 1e3 * statistics.median(zuko_blocks) / steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    torch.manual_seed(0)
    x = torch.randn(arguments.batch, arguments.dim)
    for name, (model, flow) in pairs(arguments.dim, arguments.layers).items():
        dgm_ms, zuko_ms = compare(model, flow, x, arguments.steps, arguments.rounds)
        sizes = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in flow.parameters())
        print(f"{name:8s} D={arguments.dim} batch={arguments.batch}: dgm {dgm_ms:.2f} ms/step ({sizes[0]} parameters),"
              f" zuko {zuko_ms:.2f} ms/step ({sizes[1]} parameters), ratio dgm/zuko {dgm_ms / zuko_ms:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
