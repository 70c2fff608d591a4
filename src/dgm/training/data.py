"""Batches for the trainer: in-memory tensors, shuffled reproducibly in one or many processes."""
from __future__ import annotations

import lightning.pytorch as L
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class _Examples(Dataset):
    """A tensor of examples that hands out whole batches at once (no per-example collation)."""

    def __init__(self, examples: Tensor):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Tensor:
        return self.examples[index]

    def __getitems__(self, indices: list[int]) -> Tensor:
        return self.examples[indices]


def _batch_as_is(batch: Tensor) -> Tensor:
    return batch


class DataModule(L.LightningDataModule):
    """Train and test tensors served in batches.

    Shuffling uses a ``DistributedSampler`` seeded by ``seed`` and the epoch (Lightning calls ``set_epoch``), so the
    order of batches is the same in a resumed run as in an uninterrupted one, and each DDP process gets its share.
    """

    def __init__(self, train: Tensor, test: Tensor, batch_size: int, seed: int, eval_batches: int | None = None):
        super().__init__()
        self.train, self.test = train, test
        self.batch_size, self.seed = batch_size, seed
        self.test_subset = test if eval_batches is None else test[: eval_batches * batch_size]

    def _loader(self, examples: Tensor, shuffle: bool) -> DataLoader:
        sampler = DistributedSampler(_Examples(examples), num_replicas=self.trainer.world_size,
                                     rank=self.trainer.global_rank, shuffle=shuffle, seed=self.seed,
                                     drop_last=shuffle)
        return DataLoader(_Examples(examples), batch_size=self.batch_size, sampler=sampler,
                          collate_fn=_batch_as_is, drop_last=shuffle)

    def train_dataloader(self) -> DataLoader:
        if len(self.train) < self.batch_size * self.trainer.world_size:
            raise ValueError(f"batch size {self.batch_size} is larger than the training set "
                             f"({len(self.train)} examples for {self.trainer.world_size} process(es))")
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_subset, shuffle=False)
