"""Cached versus naive sampling of WaveNet, printed as one JSON line.

The same process draws ``n`` sequences of ``length`` steps from a WaveNet of the recipe ``wavenet-waveforms``'s size
twice with the same seed: naively (the whole network over the prefix at every step) and with the per-layer queues of
cached sampling (Paine et al., 2016; Ramachandran et al., 2017). It reports both times,
``speedup = naive seconds ÷ cached seconds`` (a ratio, since the machine is shared and noisy) and whether the two
samplers drew identical sequences. A trained run folder (``--run``) may replace the freshly initialised model.

    .venv/bin/python benchmarks/wavenet_sampling.py [--n 16] [--lengths 64 256] [--threads 1] [--run RUN]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import dgm
from dgm.recipes import load_recipe


def _timed_sample(model, n: int, cached: bool, seed: int) -> tuple[torch.Tensor, float]:
    torch.manual_seed(seed)
    started = time.perf_counter()
    samples = model.sample(n, cached=cached)
    return samples, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="sequences drawn by each sampler")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256], help="sequence lengths to time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--run", default=None, help="a trained WaveNet run folder (its weights, at each length)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = load_recipe("wavenet-waveforms")["model_options"]
    results = {"n": args.n, "threads": args.threads, "model": options, "run": args.run}
    for length in args.lengths:
        torch.manual_seed(0)
        model = dgm.create("wavenet", shape=(1, length), levels=256, **options)
        if args.run is not None:
            model.load_state_dict(dgm.load(args.run).state_dict())
        model.eval()
        cached, cached_seconds = _timed_sample(model, args.n, cached=True, seed=1)
        naive, naive_seconds = _timed_sample(model, args.n, cached=False, seed=1)
        results[f"T={length}"] = {"naive_s": round(naive_seconds, 2), "cached_s": round(cached_seconds, 2),
                                  "speedup": round(naive_seconds / cached_seconds, 1),
                                  "identical": torch.equal(cached, naive)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
