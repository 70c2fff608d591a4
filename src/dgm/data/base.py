"""The one data container of dgm and the data-set registry's front door."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from dgm.core import check_data
from dgm.registry import (DATASET_DESCRIPTIONS, DATASETS, check_options, describe_options, import_modules,
                          options_of, unknown_name)


@dataclass(frozen=True)
class Data:
    """A train/test split that follows the data convention of :mod:`dgm.core`.

    ``levels`` is the number of discrete values (``None`` for continuous data). ``train_batch``, where given, builds
    the training batch of a tensor of example indices instead of ``train[indices]`` (dynamic binarization draws the
    examples afresh each time); it may use torch's global generator, whose state the trainer checkpoints. ``distribution``, where known, is the exact generator of the data, with ``sample(n)`` and,
    where exact, ``log_prob(x)`` and ``entropy()``. ``options`` rebuild the data with ``load(name, **options)``.
    """

    name: str
    train: Tensor
    test: Tensor
    levels: int | None = None
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None
    train_batch: Callable[[Tensor], Tensor] | None = None
    distribution: Any = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        check_data(self.train, self.shape, self.levels, name=f"{self.name} training data")
        check_data(self.test, self.shape, self.levels, name=f"{self.name} test data")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def dim(self) -> int:
        """Number of scalar dimensions of one example (the D of bits/dim)."""
        return self.train[0].numel()


def load(name: str, **options) -> Data:
    """Build the registered data set ``name``; ``options`` are passed to its factory, whose arguments they must be
    (see :func:`dgm.registry.check_options`)."""
    _import_data_modules()
    if name not in DATASETS:
        raise unknown_name("data set", name, DATASETS)
    owner, accepted = f"data set {name!r}", options_of(DATASETS[name])
    try:
        data = DATASETS[name](**check_options(owner, accepted, options))
    except TypeError as error:  # e.g. root=3 where a path is expected
        raise ValueError(f"{owner} cannot be built from {options}: {error}; its arguments are: "
                         f"{describe_options(accepted)}") from error
    return replace(data, name=name, options=dict(options))


def list_datasets() -> dict[str, str]:
    """Registered data-set names with a one-line description each."""
    _import_data_modules()
    return dict(sorted(DATASET_DESCRIPTIONS.items()))


def _import_data_modules() -> None:
    """Import every module of this package, ``dgm.data``, whose decorators register the data sets."""
    import_modules([str(Path(__file__).parent)], "dgm.data.")
