"""Batches for the trainer: in-memory tensors, shuffled reproducibly in one or many processes."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning.pytorch as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dgm.training.progress import batches_per_epoch


class _Examples(Dataset):
    """A tensor of examples, with their labels where given, that hands out whole batches at once (no per-example
    collation): a tensor, or an ``(examples, labels)`` pair."""

    def __init__(self, examples: Tensor, labels: Tensor | None = None):
        self.examples, self.labels = examples, labels

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Tensor | tuple[Tensor, Tensor]:
        return self.__getitems__(index)

    def __getitems__(self, indices: list[int]) -> Tensor | tuple[Tensor, Tensor]:
        return self.examples[indices] if self.labels is None else (self.examples[indices], self.labels[indices])


def _batch_as_is(batch: Tensor | tuple[Tensor, Tensor]) -> Tensor | tuple[Tensor, Tensor]:
    return batch


class ShuffledBatches:
    """The example indices of the training batches, as a function of how many batches were already trained on.

    Pass ``p`` over the data uses a permutation drawn from a generator seeded by ``seed + p``, cut into
    ``len(self)`` batches per process (process ``rank`` of ``world_size`` takes every ``world_size``-th batch-sized
    slice; the incomplete remainder is dropped). Each iteration starts at batch ``trained() mod len(self)`` of pass
    ``trained() div len(self)``, so a run resumed from a checkpoint taken mid-epoch (``max_steps``, ``max_time``)
    sees exactly the batches an uninterrupted run would have seen, in the same order.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, rank: int, world_size: int,
                 trained: Callable[[], int]):
        self.n_examples, self.batch_size, self.seed = n_examples, batch_size, seed
        self.rank, self.world_size, self.trained = rank, world_size, trained
        self.batches_per_pass = batches_per_epoch(n_examples, batch_size, world_size)

    def __len__(self) -> int:
        return self.batches_per_pass

    def __iter__(self) -> Iterator[Tensor]:
        done_passes, first_batch = divmod(self.trained(), self.batches_per_pass)
        generator = torch.Generator().manual_seed(self.seed + done_passes)
        order = torch.randperm(self.n_examples, generator=generator)
        used = self.batches_per_pass * self.world_size * self.batch_size
        yield from order[:used].view(self.batches_per_pass, self.world_size, self.batch_size)[first_batch:, self.rank]


class DataModule(L.LightningDataModule):
    """Training batches as example indices from :class:`ShuffledBatches` (reproducible across resumes and shared
    between DDP processes; the training step builds the batch, see ``TrainingModule``), test batches as tensors in
    order (``(x, labels)`` pairs where ``test_labels`` are given), split between processes."""

    def __init__(self, n_train: int, test: Tensor, batch_size: int, seed: int, eval_batches: int | None = None,
                 test_labels: Tensor | None = None):
        super().__init__()
        self.n_train = n_train
        self.batch_size, self.seed = batch_size, seed
        kept = slice(None) if eval_batches is None else slice(eval_batches * batch_size)
        self.test_subset = _Examples(test[kept], None if test_labels is None else test_labels[kept])

    def train_dataloader(self) -> ShuffledBatches:
        return ShuffledBatches(self.n_train, self.batch_size, self.seed, self.trainer.global_rank,
                               self.trainer.world_size, trained=lambda: self.trainer.lightning_module.batches_trained)

    def val_dataloader(self) -> DataLoader:
        sampler = DistributedSampler(self.test_subset, num_replicas=self.trainer.world_size,
                                     rank=self.trainer.global_rank, shuffle=False, drop_last=True)
        # a generator of its own: a DataLoader draws a seed from its generator each time it is iterated, and the
        # global one is the training's (see dgm.training.callbacks.RandomState)
        return DataLoader(self.test_subset, batch_size=self.batch_size, sampler=sampler, collate_fn=_batch_as_is,
                          generator=torch.Generator())
