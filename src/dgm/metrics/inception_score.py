"""Inception Score (Salimans et al., 2016, §4) as the course defines it (lecture 11, homework 6):

    IS = exp( E_x KL( p(y|x) ‖ p(y) ) ),   p(y) = E_x p(y|x),

computed on each of ``splits`` equal parts of the samples, with the mean (and standard deviation) over the parts.
Any classifier's probabilities serve: InceptionV3's (with the pytorch-fid weights) for natural images, dgm's digit
classifier for MNIST-like images. It lies between 1 and the number of classes, which it reaches when every sample
is classified with certainty and the classes are used equally often.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from dgm.core import check_integer


def inception_score(probabilities: Tensor, splits: int = 10) -> dict[str, float]:
    """IS of class probabilities ``(N, classes)`` (rows summing to 1): mean and standard deviation over splits."""
    if probabilities.dim() != 2:
        raise ValueError(f"probabilities must have shape (N, classes), got {tuple(probabilities.shape)}")
    check_integer(splits, "splits", 1)
    if len(probabilities) < splits:
        raise ValueError(f"the Inception Score needs at least one sample per split, got {len(probabilities)} "
                         f"samples for {splits} splits")
    scores = []
    for part in probabilities.double().tensor_split(splits):
        marginal = part.mean(0, keepdim=True)
        kl = torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)
        scores.append(kl.sum(1).mean().exp())
    scores = torch.stack(scores)
    return {"is": scores.mean().item(), "is_std": scores.std().item() if splits > 1 else math.nan}
