"""Cached versus naive sampling of PixelCNN and Gated PixelCNN on 28x28 binary images, printed as one JSON line.

The same process draws ``n`` images from a freshly initialised model twice with the same seed: once naively (the
whole network on the whole image for every position) and once with the layer caches (Ramachandran et al., 2017).
It reports both times, ``speedup = naive seconds ÷ cached seconds`` (a ratio, since the machine is shared and noisy)
and whether the two samplers drew identical images.

    .venv/bin/python benchmarks/ar_sampling.py [--n 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import dgm

CASES = [  # (model, options): the sizes of the recipes pixelcnn-mnist-binary and gated-pixelcnn-mnist-binary
    ("gated-pixelcnn", {"filters": 32, "layers": 7, "kernel_size": 5}),
    ("pixelcnn", {"filters": 64, "layers": 5, "kernel_size": 5}),
]


def _timed_sample(model, n: int, naive: bool, seed: int) -> tuple[torch.Tensor, float]:
    torch.manual_seed(seed)
    started = time.perf_counter()
    samples = model.sample(n, naive=naive)
    return samples, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="images drawn by each sampler")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--models", nargs="+", default=[name for name, _ in CASES])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"n": args.n, "shape": [1, 28, 28], "threads": args.threads}
    for name, options in CASES:
        if name not in args.models:
            continue
        torch.manual_seed(0)
        model = dgm.create(name, shape=(1, 28, 28), levels=2, **options).eval()
        cached, cached_seconds = _timed_sample(model, args.n, naive=False, seed=1)
        naive, naive_seconds = _timed_sample(model, args.n, naive=True, seed=1)
        results[name] = {**options, "naive_s": round(naive_seconds, 2), "cached_s": round(cached_seconds, 2),
                         "speedup": round(naive_seconds / cached_seconds, 1), "identical": torch.equal(cached, naive)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
