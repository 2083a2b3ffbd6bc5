"""The built-in datasets' files, parsed by torchvision: MNIST-style IDX and CIFAR-10 batches.

The data folder is only read (it may be shared or read-only): gzipped IDX files are
decompressed into the cache folder. A failure names the files that were expected where.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import shutil
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from torchvision import datasets

from downsample_study.data.batches import Split
from downsample_study.errors import DataError, StorageError, first_line, not_a_folder
from downsample_study.storage import atomic_write

log = logging.getLogger(__name__)

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _decompress(src: Path, dst: Path) -> None:
    """Decompress atomically, so parallel jobs never read a half-written file; nothing is
    left behind when ``src`` is broken or the cache folder cannot take the file."""
    try:
        with atomic_write(dst, "wb") as out, gzip.open(src) as f:
            shutil.copyfileobj(f, out)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{src}: not a complete gzip file ({err}); replace it, or delete it "
                        f"to download the dataset again") from None
    except StorageError as err:
        raise StorageError(f"{err} (paths.cache_dir is where gzipped files are decompressed: "
                           f"set it to a writable folder)") from None
    stat = src.stat()
    os.utime(dst, ns=(stat.st_atime_ns, stat.st_mtime_ns))


class _Undo:
    """Remove, on request, what a download created in the data folder: the folder itself if
    it was new, new entries at its top level, and new paths in the dataset's own folder."""

    def __init__(self, root: Path, folder: Path):
        self.root, self.folder = root, folder
        self.root_existed = root.exists()
        self.top = set(root.iterdir()) if root.is_dir() else set()
        self.inside = {folder, *folder.rglob("*")} if folder.exists() else set()

    def __call__(self) -> None:
        if not self.root_existed:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        now = {self.folder, *self.folder.rglob("*")} if self.folder.exists() else set()
        for path in sorted(now - self.inside, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        for path in set(self.root.iterdir()) - self.top - {self.folder}:
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _as_split(ds) -> Split:
    images = torch.as_tensor(ds.data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return Split(images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long))


class TorchvisionFiles(ABC):
    """A dataset's files on disk, opened with a torchvision dataset class."""

    name: str  # the dataset's config name, for messages
    folder: str  # torchvision's folder under the data root

    @abstractmethod
    def expected(self, data_dir: Path) -> list[str]:
        """The files this dataset needs under ``data_dir``, for the message when they are not."""

    @abstractmethod
    def _open(self, cfg, data_dir: Path, cache_dir: Path, train: bool, transform: Callable | None):
        """The torchvision dataset of one split, from resolved folders."""

    def open(self, cfg, data_dir: Path, cache_dir: Path, train: bool,
             transform: Callable | None = None):
        """The torchvision dataset of one split (``transform`` per sample, for plain loops)."""
        data_dir, cache_dir = data_dir.expanduser().resolve(), cache_dir.expanduser().resolve()
        if data_dir.exists() and not data_dir.is_dir():
            raise DataError(f"paths.data_dir={data_dir}: {not_a_folder(data_dir)}; set it (or "
                            f"the DATA_DIR environment variable) to the folder of the datasets")
        return self._open(cfg, data_dir, cache_dir, train, transform)

    def splits(self, cfg, data_dir: Path, cache_dir: Path) -> tuple[Split, Split]:
        """The (train, test) splits as uint8 tensors."""
        train, test = (_as_split(self.open(cfg, data_dir, cache_dir, t)) for t in (True, False))
        return train, test

    def missing(self, data_dir: Path, reason: str) -> DataError:
        paths = "\n  ".join(self.expected(data_dir))
        return DataError(
            f"dataset {self.name!r} not found or unusable under paths.data_dir={data_dir} "
            f"({reason}). Expected files:\n  {paths}\nSet paths.data_dir (or the DATA_DIR "
            f"environment variable) to the folder that holds them."
        )

    def _construct(self, cls, root: Path, data_dir: Path, train: bool, download: bool,
                   transform: Callable | None, hint: str = ""):
        undo = _Undo(root, root / self.folder) if download else None
        try:
            return cls(str(root), train=train, download=download, transform=transform)
        except Exception as err:  # download failures are URLError, RuntimeError, OSError...
            if undo is not None:  # a download that fails leaves nothing in the data folder
                undo()
            reason = first_line(err)
            raise self.missing(data_dir, reason + hint) from None


class IdxFiles(TorchvisionFiles):
    """MNIST-style: four IDX files in ``<folder>/raw``, plain or gzipped."""

    def __init__(self, name: str, folder: str, cls: type[datasets.MNIST]):
        self.name, self.folder, self.cls = name, folder, cls
        self.classes = tuple(cls.classes)

    def expected(self, data_dir: Path) -> list[str]:
        raw = data_dir / self.folder / "raw"
        return [f"{raw / name}[.gz]" for name in IDX_FILES]

    def root(self, data_dir: Path, cache_dir: Path) -> Path | None:
        """The root torchvision should read: ``data_dir``, or the cache where ``.gz`` files were
        decompressed; None when files are missing. The gzip wrapper is never checksummed:
        copies re-zipped elsewhere differ from the originals."""
        raw = data_dir / self.folder / "raw"
        if all((raw / name).is_file() for name in IDX_FILES):
            return data_dir
        if not all((raw / f"{name}.gz").is_file() for name in IDX_FILES):
            return None
        # one cache folder per source folder; a file is stale unless it carries its source's mtime
        root = cache_dir / hashlib.sha1(str(raw).encode()).hexdigest()[:16]
        for name in IDX_FILES:
            src, dst = raw / f"{name}.gz", root / self.folder / "raw" / name
            if not dst.is_file() or dst.stat().st_mtime_ns != src.stat().st_mtime_ns:
                log.info("decompressing %s -> %s", src, dst)
                _decompress(src, dst)
        return root

    def _open(self, cfg, data_dir, cache_dir, train, transform):
        root = self.root(data_dir, cache_dir)
        if root is None and not cfg.download:
            raise self.missing(data_dir, "dataset.download is false")
        return self._construct(self.cls, root or data_dir, data_dir, train, root is None, transform)


class UncheckedCIFAR10(datasets.CIFAR10):
    """CIFAR-10 without torchvision's fixed MD5 sums (``dataset.verify_checksums=false``), for
    files in the real format that cannot match them (tests, re-packed copies). With no sum,
    torchvision checks only that each file exists; it must still parse."""

    train_list: ClassVar = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list: ClassVar = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta: ClassVar = {**datasets.CIFAR10.meta, "md5": None}


class Cifar10Files(TorchvisionFiles):
    name, folder = "cifar10", "cifar-10-batches-py"
    # batches.meta's label_names, which torchvision reads only with the files
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")

    def expected(self, data_dir: Path) -> list[str]:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        return [str(data_dir / self.folder / name) for name in names]

    def _open(self, cfg, data_dir, cache_dir, train, transform):
        download = not (data_dir / self.folder).is_dir()
        if download and not cfg.download:
            raise self.missing(data_dir, "dataset.download is false")
        hint = ""
        if not download and cfg.verify_checksums:
            hint = (" (torchvision checks CIFAR-10's batch files against the original MD5 sums; "
                    "for files written in the same format, e.g. for tests, set "
                    "dataset.verify_checksums=false)")
        cls = datasets.CIFAR10 if cfg.verify_checksums else UncheckedCIFAR10
        return self._construct(cls, data_dir, data_dir, train, download, transform, hint)
