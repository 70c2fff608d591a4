"""k-nearest-neighbour manifold metrics: precision and recall (Kynkäänniemi et al., 2019, "Improved Precision and
Recall Metric for Assessing Generative Models", eq. 1-2), density and coverage (Naeem et al., 2020, "Reliable
Fidelity and Diversity Metrics for Generative Models", eq. 3-4).

Each feature vector φ of a set Φ is the centre of a closed ball whose radius is the distance to its k-th nearest
neighbour in Φ (itself excluded); the union of the balls estimates the set's manifold.

* precision = share of generated samples inside the real manifold; recall = share of real samples inside the
  generated manifold (both in [0, 1]).
* density = (1 / kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, r_i)]: how many real balls hold each of the M generated samples, over
  k; about 1 when the sets come from one distribution, unbounded above.
* coverage = share of real balls that hold at least one generated sample.

Distances are computed in row chunks with ``torch.cdist``, so memory stays at ``chunk × M``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dgm.core import check_integer
from dgm.metrics.kernel import check_feature_sets

CHUNK = 1024  # rows of a distance block


def knn_radii(features: Tensor, k: int) -> Tensor:
    """Distance of each row to its k-th nearest other row, shape ``(N,)``."""
    check_integer(k, "k", 1)
    if len(features) <= k:
        raise ValueError(f"k-nearest-neighbour radii need more than k = {k} feature vectors, got {len(features)}")
    return torch.cat([torch.cdist(block, features).topk(k + 1, dim=1, largest=False).values[:, k]
                      for block in features.split(CHUNK)])


def manifold_metrics(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of generated ``fake`` features against ``real`` ones, with balls
    of the k-th neighbour distance (Kynkäänniemi et al. use k = 3 for precision and recall, Naeem et al. k = 5)."""
    check_feature_sets(real, fake)
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    balls_holding = torch.zeros(len(fake), dtype=torch.long)  # real balls that hold each generated sample
    covered = torch.zeros(len(real), dtype=torch.bool)          # real balls that hold some generated sample
    recalled = torch.zeros(len(real), dtype=torch.bool)         # real samples inside some generated ball
    for start, block in zip(range(0, len(real), CHUNK), real.split(CHUNK)):
        distances = torch.cdist(block, fake)
        inside_real_balls = distances <= real_radii[start:start + len(block), None]
        balls_holding += inside_real_balls.sum(0)
        covered[start:start + len(block)] = inside_real_balls.any(1)
        recalled[start:start + len(block)] = (distances <= fake_radii[None, :]).any(1)
    return {"precision": (balls_holding > 0).double().mean().item(),
            "recall": recalled.double().mean().item(),
            "density": balls_holding.double().sum().item() / (k * len(fake)),
            "coverage": covered.double().mean().item()}
