"""Reference FIDs on MNIST (issue 5's sanity check), with the time each takes; prints one JSON line.

The Fréchet distance of the first N MNIST training images to the first N test images, N Fashion-MNIST test images
and N images of uniform noise, as ``--metric fid`` (the FID of papers: TF-FID Inception features, about 2.6 min per
1000 images on 2 free cores) or ``--metric fid-digits`` (dgm's digit classifier, which also gives ``is-digits``, the
Inception Score of the MNIST test set on that classifier). Results are keyed by metric name, as ``dgm evaluate``'s:
``{"fid": {"mnist_test": ..., "fashion_mnist": ..., "noise": ...}, ...}``.

    .venv/bin/python benchmarks/fid_reference.py [--n 1000] [--metric fid|fid-digits]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from dgm.data import load
from dgm.metrics.features import DigitFeatures, InceptionFeatures, data_pixels
from dgm.metrics.frechet import fit_gaussian
from dgm.metrics.inception_score import inception_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--metric", choices=["fid", "fid-digits"], default="fid")
    args = parser.parse_args()
    mnist, fashion = load("mnist"), load("fashion-mnist")
    noise = torch.randint(0, 256, (args.n, 1, 28, 28), generator=torch.Generator().manual_seed(0)).float()
    sets = {"mnist_train": data_pixels(mnist.train[:args.n], 256), "mnist_test": data_pixels(mnist.test[:args.n], 256),
            "noise": noise, "fashion_mnist": data_pixels(fashion.test[:args.n], 256)}
    extractor = InceptionFeatures() if args.metric == "fid" else DigitFeatures()
    result: dict = {"n": args.n, "features": {extractor.space: extractor.name}, "threads": torch.get_num_threads(),
                    "seconds": {}, args.metric: {}}
    statistics = {}
    for name, pixels in sets.items():  # each distance to the training images is printed (stderr) once known
        start = time.perf_counter()
        statistics[name] = fit_gaussian(extractor.features(pixels, progress=True))
        result["seconds"][name] = time.perf_counter() - start
        if name != "mnist_train":
            start = time.perf_counter()
            result[args.metric][name] = statistics["mnist_train"].distance(statistics[name])
            result["seconds"][f"frechet_{name}"] = time.perf_counter() - start
            print(json.dumps(result), file=sys.stderr, flush=True)
    if args.metric == "fid-digits":
        start = time.perf_counter()
        probabilities = extractor.probabilities(extractor.features(data_pixels(mnist.test, 256)))
        score = inception_score(probabilities)
        result["is-digits"] = {"mnist_test": score["is"], "mnist_test_std": score["is_std"]}
        result["seconds"]["is-digits_mnist_test"] = time.perf_counter() - start
    print(json.dumps(result))


if __name__ == "__main__":
    main()
