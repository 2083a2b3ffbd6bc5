"""The datasets' registry: each one's shape, classes, normalisation and uint8 (train, test) loader.

A new dataset is one ``@register_dataset`` function returning its two ``Split``s, plus a YAML
file in ``conf/dataset/``, which may live on Hydra's search path (``hydra.searchpath=[...]``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets

from downsample_study.data.batches import Split
from downsample_study.data.canvas import translated
from downsample_study.data.configs import DATASETS, DatasetConfig
from downsample_study.data.files import Cifar10Files, IdxFiles
from downsample_study.errors import DataError

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
    classes: tuple[str, ...] = ()  # the labels' names, by index; () where none are given
    # (this dataset, its config) -> the dataset as the config shapes it, where options set its
    # side and normalisation (a canvas's); None: always as registered
    configure: Callable[[ImageDataset, DatasetConfig], ImageDataset] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def configured(self, cfg: DatasetConfig) -> ImageDataset:
        """This dataset as ``cfg`` (its node of the config) shapes it: what a job trains on."""
        return self if self.configure is None else self.configure(self, cfg)


def register_dataset(
    name: str, *, channels: int, size: int, num_classes: int, mean: tuple[float, ...],
    std: tuple[float, ...], schema: type | None = None, classes: tuple[str, ...] = (),
) -> Callable[[Loader], Loader]:
    """Register ``load(cfg, data_dir, cache_dir) -> (train, test)`` as dataset ``name``; ``schema``,
    its config dataclass (default: ``DatasetConfig``); ``classes``, the labels' names by index."""

    if classes and len(classes) != num_classes:
        raise ValueError(f"dataset {name!r}: {len(classes)} class names for {num_classes} "
                         f"classes")

    def decorate(load: Loader) -> Loader:
        DATASETS.add(name, ImageDataset(name, channels, size, num_classes, tuple(mean),
                                        tuple(std), load, classes=tuple(classes)), schema)
        return load

    return decorate


def _add_files(files, channels: int, size: int, mean, std) -> None:
    DATASETS.add(
        files.name,
        ImageDataset(files.name, channels, size, 10, mean, std, files.splits, files.open,
                     files.classes),
    )


_add_files(IdxFiles("mnist", "MNIST", datasets.MNIST), 1, 28, (0.1307,), (0.3081,))
_add_files(IdxFiles("fashion_mnist", "FashionMNIST", datasets.FashionMNIST), 1, 28,
           (0.2860,), (0.3530,))
_add_files(Cifar10Files(), 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _check(split: Split, which: str, info: ImageDataset, data_dir: Path) -> None:
    """Files that parse but disagree with each other or with the dataset's shape stop here:
    a split is trained on as it is, so it must be what it claims to be."""
    where = f"dataset {info.name!r} under paths.data_dir={data_dir}: the {which} split"
    images, labels = split.images, split.labels
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != info.input_shape:
        raise DataError(f"{where} has {images.dtype} images of shape "
                        f"{'×'.join(map(str, images.shape[1:]))}, expected uint8 "
                        f"{'×'.join(map(str, info.input_shape))}")
    if len(images) != len(labels):
        raise DataError(f"{where} has {len(images)} images but {len(labels)} labels: its "
                        f"image and label files do not belong together")
    if len(labels) == 0:
        raise DataError(f"{where} is empty")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= info.num_classes:
        raise DataError(f"{where} has labels {low} to {high}; its {info.num_classes} classes "
                        f"are 0 to {info.num_classes - 1}")


def _checked(info: ImageDataset, cfg: DatasetConfig, data_dir: Path, cache_dir: Path
             ) -> tuple[Split, Split]:
    train, test = info.load(cfg, Path(data_dir), Path(cache_dir))
    for split, which in ((train, "training"), (test, "test")):
        _check(split, which, info, Path(data_dir))
    return train, test


def load_splits(cfg: DatasetConfig, data_dir: Path, cache_dir: Path) -> tuple[Split, Split]:
    """The (train, test) splits of the dataset ``cfg.name``, checked."""
    return _checked(DATASETS[cfg.name].configured(cfg), cfg, data_dir, cache_dir)


def _add_canvas(source: str) -> None:
    """``source`` placed on a canvas (data/canvas.py), as ``translated_<source>``; its files
    are checked as the source's."""
    info, name = DATASETS[source], f"translated_{source}"
    DATASETS.add(name, translated(name, info, functools.partial(_checked, info)))


_add_canvas("mnist")
_add_canvas("fashion_mnist")
