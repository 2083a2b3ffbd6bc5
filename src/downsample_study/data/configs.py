"""The datasets' schema and registry, torch-free: Hydra composes before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from downsample_study.checks import at_least
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
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


SOURCE_SIDE = 28  # the side of MNIST's and Fashion-MNIST's images, which a canvas holds


class Placement(Choice):
    random = "random"  # drawn once per image, from split_seed
    centre = "centre"


@dataclass
class CanvasConfig(DatasetConfig):
    """A 28×28 dataset's images each placed on a larger blank canvas (translated MNIST, as in
    Jaderberg et al. 2015's spatial transformer networks)."""

    canvas: int = 60  # the canvas's side, px (>= 28)
    # where each training image lies (and so each validation one, held out of them): random,
    # drawn once per image from split_seed, or centre
    train_placement: Placement = Placement.random
    test_placement: Placement = Placement.random  # where each test image lies (drawn apart)
    # a random position's largest offset from the centred one, px along each axis; null:
    # anywhere on the canvas
    max_offset: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.canvas < SOURCE_SIDE:
            raise ConfigError(f"dataset.canvas: a canvas of {self.canvas} px cannot hold a "
                              f"{SOURCE_SIDE}×{SOURCE_SIDE} image; at least {SOURCE_SIDE}")
        for key in ("train_placement", "test_placement"):
            setattr(self, key, as_choice(Placement, getattr(self, key), f"dataset.{key}"))
        room = (self.canvas - SOURCE_SIDE) // 2
        if self.max_offset is not None and not 0 <= self.max_offset <= room:
            raise ConfigError(f"dataset.max_offset: 0 to {room} on a {self.canvas} px canvas "
                              f"(null: anywhere on it), got {self.max_offset}")


DATASETS: Registry = Registry("dataset", DatasetConfig, "downsample_study.data.datasets", {
    "mnist": DatasetConfig, "fashion_mnist": DatasetConfig, "cifar10": DatasetConfig,
    "translated_mnist": CanvasConfig, "translated_fashion_mnist": CanvasConfig,
})
