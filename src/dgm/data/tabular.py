"""A small tabular data set that ships offline: scikit-learn's Wisconsin breast cancer features (Street, Wolberg &
Mangasarian, 1993), 569 examples of 30 continuous measurements.

The split is fixed: a permutation drawn by a generator seeded with 0 puts 80% of the examples (455) in the training
set and the rest (114) in the test set. Each feature is log-transformed where all its values are positive (most are
areas, radii and counts with long right tails), then standardised with the mean and standard deviation of the
training set, so that a flow with a standard normal base starts close to the data. Labels (malignant 0, benign 1)
are kept for plots.
"""
from __future__ import annotations

import torch
from sklearn.datasets import load_breast_cancer

from dgm.data.base import Data
from dgm.registry import register_dataset

TRAIN_SHARE = 0.8


@register_dataset("breast-cancer", "scikit-learn breast cancer: 30 continuous features, log and standardised, "
                                   "455 train / 114 test (tabular flows)")
def breast_cancer() -> Data:
    features, labels = load_breast_cancer(return_X_y=True)
    x, y = torch.from_numpy(features).double(), torch.from_numpy(labels)
    positive = (x > 0).all(dim=0)
    x[:, positive] = x[:, positive].log()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:round(TRAIN_SHARE * len(x))], order[round(TRAIN_SHARE * len(x)):]
    mean, std = x[train].mean(dim=0), x[train].std(dim=0)
    x = ((x - mean) / std).float()
    return Data("breast-cancer", x[train], x[test], train_labels=y[train], test_labels=y[test])
