"""The datasets' schema and registry, torch-free: Hydra composes before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from downsample_study.checks import at_least
from downsample_study.registry import INCIDENTAL, Registry


@dataclass
class DatasetConfig:
    name: str = MISSING
    batch_size: int = 64  # training batch
    eval_batch_size: int = field(default=1000, metadata=INCIDENTAL)  # validation and test
    val_size: int = 5000  # images held out of the training set to select the checkpoint
    split_seed: int = 0  # the train/val split is the same for every run seed
    augment: bool = False  # random crop (pad 4) + horizontal flip, on the batch, on device
    # check the files against the dataset's published checksums where it has them (CIFAR-10)
    verify_checksums: bool = field(default=True, metadata=INCIDENTAL)
    download: bool = field(default=True, metadata=INCIDENTAL)  # fetch missing files

    def __post_init__(self) -> None:
        for key in ("batch_size", "eval_batch_size", "val_size"):
            at_least(f"dataset.{key}", getattr(self, key), 1)


DATASETS: Registry = Registry("dataset", DatasetConfig, "downsample_study.data.datasets", {
    "mnist": DatasetConfig, "fashion_mnist": DatasetConfig, "cifar10": DatasetConfig,
})
