"""Speed of FID feature extraction: dgm's InceptionV3 (batch norms folded into the convolutions, channels-last
layout, inference mode) against the shipped TorchScript network as it comes, in one process, on the same pixels
and the same resize, at several batch sizes; prints one JSON line with the images per second of each, the ratio at
each batch size, the ratio of the two networks each at its own best batch size, and the largest feature difference.

    .venv/bin/python benchmarks/fid_speed.py [--images 32] [--batch-sizes 4,8,16,32] [--repeats 2] [--threads N]

The images are 28x28 grey digits-like pixels (random), resized to 299x299 as for MNIST. For each batch size both
networks run ``repeats`` times, interleaved; the best time of each is reported (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from dgm.metrics.features import InceptionFeatures, inception_input, load_torchscript_inception


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-sizes", default="4,8,16,32", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pixels = torch.randint(0, 256, (args.images, 1, 28, 28), generator=torch.Generator().manual_seed(0)).float()
    shipped = load_torchscript_inception()
    ours = InceptionFeatures()

    @torch.inference_mode()
    def shipped_features(batch_size: int) -> torch.Tensor:
        return torch.cat([shipped(inception_input(batch)) for batch in pixels.split(batch_size)])

    rates: dict[str, dict[int, float]] = {"torchscript": {}, "dgm": {}}
    difference = 0.0
    for batch_size in map(int, args.batch_sizes.split(",")):
        ours.batch_size = batch_size
        seconds = {"torchscript": [], "dgm": []}
        for _ in range(args.repeats):  # interleaved, so that both see the same load
            outputs = {}
            for name, method in (("torchscript", lambda: shipped_features(batch_size)),
                                 ("dgm", lambda: ours.features(pixels))):
                start = time.perf_counter()
                outputs[name] = method()
                seconds[name].append(time.perf_counter() - start)
            difference = max(difference, (outputs["dgm"] - outputs["torchscript"]).abs().max().item())
        for name in rates:
            rates[name][batch_size] = args.images / min(seconds[name])
    print(json.dumps({"images": args.images, "threads": torch.get_num_threads(), "images_per_second": rates,
                      "speedup_at_equal_batch_size": {size: rates["dgm"][size] / rates["torchscript"][size]
                                                      for size in rates["dgm"]},
                      "speedup_best_vs_best": max(rates["dgm"].values()) / max(rates["torchscript"].values()),
                      "max_abs_feature_difference": difference}))


if __name__ == "__main__":
    main()
