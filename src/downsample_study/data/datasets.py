"""The datasets, behind one registry: what a model needs to know of each (channels, size,
classes, normalisation) and how to load its (train, test) splits as uint8 tensors.

A new dataset is one function decorated with ``@register_dataset`` that returns its two
``Split``s, and one YAML file in ``conf/dataset/`` (which may live outside the package, on
Hydra's search path: ``hydra.searchpath=[file://my_conf]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING
from torchvision import datasets

from downsample_study.data.batches import Split
from downsample_study.data.files import Cifar10Files, IdxFiles
from downsample_study.registry import Registry


@dataclass
class DatasetConfig:
    name: str = MISSING
    batch_size: int = 64
    eval_batch_size: int = 1000
    val_size: int = 5000
    split_seed: int = 0  # the train/val split is the same for every run seed
    augment: bool = False  # random crop (pad 4) + horizontal flip, on the batch, on device
    # check the files against the dataset's published checksums where it has them (CIFAR-10)
    verify_checksums: bool = True
    download: bool = True


Loader = Callable[[DatasetConfig, Path, Path], tuple[Split, Split]]


@dataclass(frozen=True)
class ImageDataset:
    """One registered dataset: images of ``channels`` × ``size`` × ``size``."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    load: Loader  # (config, data_dir, cache_dir) -> (train, test)
    # (config, data_dir, cache_dir, train, transform) -> a per-sample torch Dataset, for the
    # bench's plain DataLoader loop; None where the dataset has no such form
    per_sample: Callable | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)


DATASETS: Registry[ImageDataset] = Registry("dataset")


def register_dataset(
    name: str, *, channels: int, size: int, num_classes: int, mean: tuple[float, ...],
    std: tuple[float, ...], schema: type = DatasetConfig,
) -> Callable[[Loader], Loader]:
    """Register ``load(cfg, data_dir, cache_dir) -> (train, test)`` as dataset ``name``."""

    def decorate(load: Loader) -> Loader:
        DATASETS.add(name, ImageDataset(name, channels, size, num_classes, tuple(mean),
                                        tuple(std), load), schema)
        return load

    return decorate


def _add_files(files, channels: int, size: int, mean, std) -> None:
    DATASETS.add(
        files.name,
        ImageDataset(files.name, channels, size, 10, mean, std, files.splits, files.open),
        DatasetConfig,
    )


_add_files(IdxFiles("mnist", "MNIST", datasets.MNIST), 1, 28, (0.1307,), (0.3081,))
_add_files(IdxFiles("fashion_mnist", "FashionMNIST", datasets.FashionMNIST), 1, 28,
           (0.2860,), (0.3530,))
_add_files(Cifar10Files(), 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def load_splits(cfg: DatasetConfig, data_dir: Path, cache_dir: Path) -> tuple[Split, Split]:
    """The (train, test) splits of the dataset ``cfg.name``."""
    return DATASETS[cfg.name].load(cfg, Path(data_dir), Path(cache_dir))
