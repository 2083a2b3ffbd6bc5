"""The LightningDataModule: train/val/test of one dataset; val is a fixed split of the
training set, the same for every run seed."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from downsample_study.data.batches import Split, TensorBatches
from downsample_study.data.datasets import DATASETS, DatasetConfig, load_splits
from downsample_study.errors import DataError


class DownsampleDataModule(L.LightningDataModule):
    def __init__(self, cfg: DatasetConfig, data_dir: Path, cache_dir: Path, seed: int):
        super().__init__()
        self.cfg, self.data_dir, self.cache_dir, self.seed = cfg, data_dir, cache_dir, seed
        self.info = DATASETS[cfg.name]
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
        default the job's)."""
        trainer = self.trainer
        return TensorBatches(
            self.splits[split],
            self.cfg.batch_size if train else self.cfg.eval_batch_size,
            self.info.mean,
            self.info.std,
            shuffle=train,
            seed=self.seed if seed is None else seed,
            epoch=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
            augment=train and self.cfg.augment,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            completed=(lambda: trainer.fit_loop.epoch_loop.batch_progress.current.completed)
            if trainer else (lambda: 0),
        )

    def train_dataloader(self) -> TensorBatches:
        return self.batches("train", train=True)

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self.batches("test")
