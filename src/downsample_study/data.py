"""Datasets as whole uint8 tensors on the training device, batched by index.

torchvision's MNIST / FashionMNIST / CIFAR10 classes parse the files; after that each split is
one uint8 tensor that lives on the training device. A batch is an index slice of it, converted
and normalised in one fused op (and augmented on the batch for CIFAR-10): no per-sample PIL
conversion, no DataLoader workers competing with the compute threads.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torchvision import datasets

from downsample_study.config import DatasetConfig, UserError

log = logging.getLogger(__name__)


class DataError(UserError):
    """The dataset's files are missing or unusable; the message names the expected paths."""


class _UncheckedCIFAR10(datasets.CIFAR10):
    """CIFAR-10 without torchvision's fixed MD5 check (``dataset.verify_checksums=false``).

    Files written in the real format for tests, or re-packed copies, cannot match the sums of
    the original archive. The files must still exist and parse.
    """

    def _check_integrity(self) -> bool:
        folder = Path(self.root, self.base_folder)
        return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        path = Path(self.root, self.base_folder, self.meta["filename"])
        if path.is_file():
            import pickle

            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        else:
            self.classes = [str(i) for i in range(10)]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


@dataclass(frozen=True)
class DatasetInfo:
    folder: str  # torchvision's folder under the data root
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    idx_files: tuple[str, ...] = ()  # MNIST-style raw files (empty for CIFAR-10)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("MNIST", 1, 28, 10, (0.1307,), (0.3081,), _IDX_FILES),
    "fashion_mnist": DatasetInfo("FashionMNIST", 1, 28, 10, (0.2860,), (0.3530,), _IDX_FILES),
    "cifar10": DatasetInfo(
        "cifar-10-batches-py", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ),
}
_TORCHVISION = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


def _decompress(src: Path, dst: Path) -> None:
    """Decompress atomically, so parallel jobs never read a half-written file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dst.parent, delete=False) as tmp, gzip.open(src) as f:
        shutil.copyfileobj(f, tmp)
    os.replace(tmp.name, dst)
    stat = src.stat()
    os.utime(dst, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def idx_root(info: DatasetInfo, data_dir: Path, cache_dir: Path) -> Path | None:
    """The root torchvision should read: raw files as they are, or decompressed from ``.gz``.

    ``.gz`` files are decompressed into ``cache_dir`` (the data folder is never written to,
    it may be shared or read-only). The gzip wrapper is never checksummed: copies re-zipped
    elsewhere differ from the originals; torchvision parses the decompressed bytes. Returns
    None when files are missing.
    """
    raw = data_dir / info.folder / "raw"
    if all((raw / name).is_file() for name in info.idx_files):
        return data_dir
    if not all((raw / f"{name}.gz").is_file() for name in info.idx_files):
        return None
    # one cache folder per source folder; a file is stale unless it carries its source's mtime
    root = cache_dir / hashlib.sha1(str(raw).encode()).hexdigest()[:16]
    for name in info.idx_files:
        src, dst = raw / f"{name}.gz", root / info.folder / "raw" / name
        if not dst.is_file() or dst.stat().st_mtime_ns != src.stat().st_mtime_ns:
            log.info("decompressing %s -> %s", src, dst)
            _decompress(src, dst)
    return root


def _expected_paths(info: DatasetInfo, data_dir: Path) -> list[str]:
    if info.idx_files:
        raw = data_dir / info.folder / "raw"
        return [f"{raw / name}[.gz]" for name in info.idx_files]
    folder = data_dir / info.folder
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return [str(folder / name) for name in names]


def load_splits(
    name: str, cfg: DatasetConfig, data_dir: Path, cache_dir: Path
) -> tuple[Split, Split]:
    """The (train, test) splits of dataset ``name`` as uint8 tensors, via torchvision."""
    info = DATASETS[name]
    data_dir, cache_dir = data_dir.expanduser().resolve(), cache_dir.expanduser().resolve()
    if info.idx_files:
        root = idx_root(info, data_dir, cache_dir)
        download = root is None
        cls = _TORCHVISION[name]
    else:
        root = data_dir
        download = not (data_dir / info.folder).is_dir()
        cls = datasets.CIFAR10 if cfg.verify_checksums else _UncheckedCIFAR10
    if download and not cfg.download:
        raise DataError(_missing(name, info, data_dir, "dataset.download is false"))
    try:
        splits = [cls(str(root or data_dir), train=t, download=download) for t in (True, False)]
    except Exception as err:  # download failures are URLError, RuntimeError, OSError...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not info.idx_files and not download and cfg.verify_checksums:
            reason += (
                " (torchvision checks CIFAR-10's batch files against the original MD5 sums; "
                "for files written in the same format, e.g. for tests, set "
                "dataset.verify_checksums=false)"
            )
        raise DataError(_missing(name, info, data_dir, reason)) from None
    return tuple(_as_split(ds) for ds in splits)


def _missing(name: str, info: DatasetInfo, data_dir: Path, reason: str) -> str:
    paths = "\n  ".join(_expected_paths(info, data_dir))
    return (
        f"dataset {name!r} not found or unusable under paths.data_dir={data_dir} ({reason}). "
        f"Expected files:\n  {paths}\nSet paths.data_dir (or the DATA_DIR environment variable) "
        f"to the folder that holds them."
    )


def _as_split(ds) -> Split:
    images = torch.as_tensor(ds.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return Split(images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long))


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-image random crop (zero padding ``pad``) and horizontal flip, on the whole batch."""
    n, _, h, w = x.shape
    shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (shifts[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (shifts[1, :, None] + torch.arange(w, device=x.device))
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class TensorBatches:
    """Batches of a ``Split`` by index: normalised float images and labels.

    Shuffling draws a permutation from ``(seed, epoch)``, so an epoch's order does not depend
    on what ran before it (a resumed run sees the same batches). ``rank``/``world_size`` give
    each DDP process its own shard: equal-length for training (DDP steps in lockstep), every
    sample exactly once for evaluation.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        augment: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.split, self.batch_size = split, batch_size
        device = split.images.device
        std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -torch.tensor(mean, device=device).view(1, -1, 1, 1) / std_t
        self.shuffle, self.seed, self.epoch, self.augment = shuffle, seed, epoch, augment
        self.rank, self.world_size = rank, world_size

    def _indices(self, generator: torch.Generator) -> torch.Tensor:
        n = len(self.split)
        if self.shuffle:
            order = torch.randperm(n, generator=generator)
            per_rank = n // self.world_size
            return order[self.rank * per_rank : (self.rank + 1) * per_rank]
        return torch.arange(self.rank, n, self.world_size)

    def __len__(self) -> int:
        n = len(self.split)
        n = n // self.world_size if self.shuffle else len(range(self.rank, n, self.world_size))
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch())
        index = self._indices(generator).to(self.split.images.device)
        for start in range(0, len(index), self.batch_size):
            batch = index[start : start + self.batch_size]
            # index_select, not images[batch]: 5 µs instead of 24 for a LeNet batch on CPU
            images = self.split.images.index_select(0, batch)
            x = torch.addcmul(self.shift, images.float(), self.scale)
            if self.augment:
                x = random_crop_flip(x, generator)
            yield x, self.split.labels.index_select(0, batch)


class DownsampleDataModule(L.LightningDataModule):
    """Train/val/test of one dataset; val is a fixed split of the training set."""

    def __init__(self, cfg: DatasetConfig, data_dir: Path, cache_dir: Path, seed: int):
        super().__init__()
        self.cfg, self.data_dir, self.cache_dir, self.seed = cfg, data_dir, cache_dir, seed
        self.info = DATASETS[cfg.name]
        self.splits: dict[str, Split] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train, test = load_splits(self.cfg.name, self.cfg, self.data_dir, self.cache_dir)
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

    def _batches(self, split: str, train: bool = False) -> TensorBatches:
        trainer = self.trainer
        return TensorBatches(
            self.splits[split],
            self.cfg.batch_size if train else self.cfg.eval_batch_size,
            self.info.mean,
            self.info.std,
            shuffle=train,
            seed=self.seed,
            epoch=(lambda: trainer.current_epoch) if trainer else (lambda: 0),
            augment=train and self.cfg.augment,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", train=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test")
