"""The LightningDataModule: one dataset's train, val (fixed for every seed) and test splits.

A pack's K members train on batches in their own seeds' orders, side by side along the channels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch

from downsample_study.data.batches import Split, TensorBatches, random_crop_flip
from downsample_study.data.datasets import DATASETS, DatasetConfig, load_splits
from downsample_study.errors import DataError
from downsample_study.nets.packed import stack_members


class DownsampleDataModule(L.LightningDataModule):
    def __init__(self, cfg: DatasetConfig, data_dir: Path, cache_dir: Path, seeds: list[int]):
        """``seeds``: each member's, which orders its training batches."""
        super().__init__()
        self.cfg, self.data_dir, self.cache_dir = cfg, data_dir, cache_dir
        self.seeds = list(seeds)
        self.info = DATASETS[cfg.name].configured(cfg)
        self.splits: dict[str, Split] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train, test = load_splits(self.cfg, self.data_dir, self.cache_dir)
        if self.cfg.val_size >= len(train):
            raise DataError(
                f"dataset.val_size={self.cfg.val_size} leaves no training data: the training "
                f"set of {self.cfg.name} has {len(train)} images"
            )
        order = torch.randperm(
            len(train), generator=torch.Generator().manual_seed(self.cfg.split_seed)
        )
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        self.splits = {
            "train": train.subset(order[self.cfg.val_size :]).to(device),
            "val": train.subset(order[: self.cfg.val_size]).to(device),
            "test": test.to(device),
        }

    def batches(self, split: str, train: bool = False, seed: int | None = None) -> TensorBatches:
        """The batches of ``split`` (training ones shuffled in the order of ``seed``, by
        default the first member's)."""
        trainer = self.trainer
        return TensorBatches(
            self.splits[split],
            self.cfg.batch_size if train else self.cfg.eval_batch_size,
            self.info.mean,
            self.info.std,
            shuffle=train,
            seed=self.seeds[0] if seed is None else seed,
            epoch=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
            augment=train and self.cfg.augment,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            completed=(lambda: trainer.fit_loop.epoch_loop.batch_progress.current.completed)
            if trainer else (lambda: 0),
        )

    def train_dataloader(self) -> TensorBatches | MemberBatches:
        if len(self.seeds) == 1:
            return self.batches("train", train=True)
        return MemberBatches([self.batches("train", train=True, seed=s) for s in self.seeds])

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self.batches("test")


class MemberBatches:
    """The members' ``TensorBatches`` zipped: each step's batch holds every member's along the
    channels, member by member, with the labels as ``(batch, K)`` (stateful like them). The
    members' images are gathered and normalised at once (benchmarks/RESULTS.md)."""

    def __init__(self, members: list[TensorBatches]):
        self.members = members

    def __len__(self) -> int:
        return len(self.members[0])

    def state_dict(self) -> dict[str, int]:
        return self.members[0].state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        for batches in self.members:
            batches.load_state_dict(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first, k = self.members[0], len(self.members)
        split = first.split  # every member's: the same split, in its own order
        for batch in zip(*(m.index_batches() for m in self.members), strict=True):
            index = torch.stack([member_index for member_index, _ in batch], 1).view(-1)
            images = split.images.index_select(0, index)  # sample by sample, member by member
            n, c, h, w = images.shape
            x = first.normalised(images.view(n // k, k * c, h, w), repeats=k)
            if first.augment:
                x = stack_members([random_crop_flip(part, generator) for part, (_, generator)
                                   in zip(x.chunk(k, dim=1), batch, strict=True)])
            yield x, split.labels.index_select(0, index).view(n // k, k)
