"""Speed of FID feature extraction: dgm's InceptionV3 (batch norms folded into the convolutions, channels-last
layout, inference mode) against the shipped TorchScript network as it comes, in one process, on the same pixels
and the same resize; prints one JSON line with the times, the ratio and the largest feature difference.

    .venv/bin/python benchmarks/fid_speed.py [--images 16] [--batch-size 8] [--repeats 3] [--threads N]

The images are 28x28 grey digits-like pixels (random), resized to 299x299 as for MNIST. Each method runs
``repeats`` times, interleaved; the best time of each is reported (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from dgm.metrics.features import InceptionFeatures, inception_input, load_torchscript_inception


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pixels = torch.randint(0, 256, (args.images, 1, 28, 28), generator=torch.Generator().manual_seed(0)).float()
    shipped = load_torchscript_inception()
    ours = InceptionFeatures(batch_size=args.batch_size)

    @torch.inference_mode()
    def shipped_features() -> torch.Tensor:
        return torch.cat([shipped(inception_input(batch)) for batch in pixels.split(args.batch_size)])

    methods = {"torchscript": shipped_features, "dgm": lambda: ours.features(pixels)}
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs = {}
    for _ in range(args.repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            outputs[name] = method()
            times[name].append(time.perf_counter() - start)
    best = {name: min(seconds) for name, seconds in times.items()}
    print(json.dumps({"images": args.images, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                      "seconds": best, "images_per_second": {k: args.images / v for k, v in best.items()},
                      "speedup": best["torchscript"] / best["dgm"],
                      "max_abs_feature_difference": (outputs["dgm"] - outputs["torchscript"]).abs().max().item()}))


if __name__ == "__main__":
    main()
