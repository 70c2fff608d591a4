"""Speed of the Fréchet distance on 2048-d covariances: dgm vs the scipy.linalg.sqrtm formula (pytorch-fid, the
course) vs torchmetrics' FID computation, in one process; prints one JSON line with the times and the ratios.

    .venv/bin/python benchmarks/frechet_speed.py [--dim 2048] [--samples 5000] [--repeats 3]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/frechet_speed.py      # one thread for torch and scipy's BLAS

The covariances are those of ``samples`` random non-negative, correlated feature vectors (like pool3 features).
Each method runs ``repeats`` times, interleaved; the best time of each is reported (the machine is shared).
torchmetrics comes with ``pip install -e '.[bench]'``.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import threadpool_info

from dgm.metrics.frechet import fit_gaussian, frechet_distance


def scipy_sqrtm(mu1, sigma1, mu2, sigma2) -> float:
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def features(samples: int, dim: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    mixing = torch.randn(dim, dim, generator=generator) / dim ** 0.5
    return torch.relu(torch.randn(samples, dim, generator=generator) @ mixing + shift)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    a = fit_gaussian(features(args.samples, args.dim, 0.0, generator))
    b = fit_gaussian(features(args.samples, args.dim, 0.3, generator))
    mu1, s1, mu2, s2 = a.mean, a.covariance, b.mean, b.covariance
    methods = {"dgm": lambda: frechet_distance(mu1, s1, mu2, s2),
               "scipy_sqrtm": lambda: scipy_sqrtm(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())}
    try:
        from torchmetrics.image.fid import _compute_fid
        methods["torchmetrics"] = lambda: _compute_fid(mu1, s1, mu2, s2).item()
    except ImportError:
        pass
    times: dict[str, list[float]] = {name: [] for name in methods}
    values = {}
    for _ in range(args.repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            values[name] = method()
            times[name].append(time.perf_counter() - start)
    best = {name: min(seconds) for name, seconds in times.items()}
    result = {"dim": args.dim, "samples": args.samples, "threads": torch.get_num_threads(),
              "blas_threads": {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()},
              "seconds": best, "fid": values,
              "relative_difference_to_scipy": abs(values["dgm"] - values["scipy_sqrtm"]) / values["scipy_sqrtm"]}
    result |= {f"speedup_vs_{name}": best[name] / best["dgm"] for name in methods if name != "dgm"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
