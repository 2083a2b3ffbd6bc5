"""Tiny synthetic datasets in the real on-disk formats (gzipped IDX, CIFAR-10's pickled
batches), so torchvision's own parsers read them."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

# The real MNIST/FashionMNIST for the real-data checks: where REAL_DATA_DIR points (CI sets
# it), else nowhere (those tests skip).
REAL_DATA = Path(os.environ["REAL_DATA_DIR"]) if os.environ.get("REAL_DATA_DIR") else None

NUM_CLASSES = 10

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` labels cycling through the 10 classes, shuffled (counts differ by <= 1)."""
    return rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.uint8)


def _block_cell(label: int, cell: int, grid: int = 4) -> tuple[slice, slice]:
    """Return the (row, col) slices of the class-specific ``cell``-px block on a ``grid`` grid."""
    row, col = divmod(label, grid)
    return slice(row * cell, (row + 1) * cell), slice(col * cell, (col + 1) * cell)


def _mnist_like_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make [N, 28, 28] uint8 images: dim noise plus a bright 7x7 block at a per-class cell.

    The cells lie on a 4x4 grid of 7-px cells, so the class signal survives downsampling to
    14x14 or 7x7, and a linear model separates the classes after a few steps.
    """
    n = len(labels)
    images = rng.integers(0, 64, size=(n, 28, 28), dtype=np.uint8)
    brightness = rng.integers(160, 256, size=n, dtype=np.int64)
    for i, label in enumerate(labels):
        rows, cols = _block_cell(int(label), 7)
        images[i, rows, cols] = brightness[i]
    return images


def _cifar_like_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make [N, 32, 32, 3] uint8 HWC images: noise plus a per-class coloured 8x8 block."""
    n = len(labels)
    hues = np.linspace(0.0, 1.0, NUM_CLASSES, endpoint=False)
    # Fully saturated colour per class, from its hue (simple HSV -> RGB with S = V = 1).
    colours = np.stack(
        [np.clip(np.abs(((hues * 6 + k) % 6) - 3) - 1, 0, 1) for k in (0, 4, 2)], axis=1
    )
    colours = (colours * 255).astype(np.int64)
    images = rng.integers(0, 80, size=(n, 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        rows, cols = _block_cell(int(label), 8)
        images[i, rows, cols, :] = colours[int(label)]
    return images


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0000_08_<ndim>, big-endian int32 dims)."""
    assert array.dtype == np.uint8
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx_dataset(
    root: Path,
    name: str = "MNIST",
    n_train: int = 600,
    n_test: int = 200,
    gz: bool = True,
    seed: int = 0,
) -> Path:
    """Write a small learnable MNIST-style dataset in torchvision's raw IDX layout.

    Files go to ``root/<name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``; with ``gz``
    only the ``.gz`` versions are written (like ``../shared/data``), so a loader must
    decompress them itself before ``torchvision.datasets.MNIST(download=False)`` accepts them.
    Images are 28x28 uint8; class ``c`` is a bright 7x7 block in cell ``divmod(c, 4)`` of a
    4x4 grid over uint8 noise; labels are balanced. Use ``name="FashionMNIST"`` for that
    layout (same pixel content). Returns the ``raw`` directory.
    """
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = _balanced_labels(n, rng)
        images = _mnist_like_images(labels, rng)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = raw / f"{prefix}-{kind}-ubyte"
            payload = _idx_bytes(array)
            if gz:
                # mtime=0 keeps the bytes deterministic for a given seed.
                path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload, mtime=0))
            else:
                path.write_bytes(payload)
    return raw


def write_cifar10(root: Path, n_train: int = 500, n_test: int = 200, seed: int = 0) -> Path:
    """Write a small learnable CIFAR-10 in the real python-pickle format.

    Layout: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``. Batches are
    protocol-2 pickles of dicts keyed like the originals (``batch_label``, ``labels``, ``data``,
    ``filenames``; str keys, as ``pickle.load(f, encoding="latin1")`` yields for the originals),
    ``data`` uint8 [N, 3072] channel-major (R, G, B planes of 32x32), ``labels`` a list of
    ints; ``n_train`` is split over the 5 data batches. Class ``c`` is an 8x8 block of a
    class-specific colour in cell ``divmod(c, 4)`` over noise.

    The files do not match torchvision's MD5 sums, so ``torchvision.datasets.CIFAR10`` refuses
    them; a loader must skip (or override) ``_check_integrity`` and the meta MD5 check.
    Returns the ``cifar-10-batches-py`` directory.
    """
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def dump(file_name: str, batch_label: str, n: int) -> None:
        labels = _balanced_labels(n, rng)
        hwc = _cifar_like_images(labels, rng)
        data = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2).reshape(n, 3 * 32 * 32))
        entry = {
            "batch_label": batch_label,
            "labels": [int(x) for x in labels],
            "data": data,
            "filenames": [f"synthetic_{file_name}_{i:05d}.png" for i in range(n)],
        }
        with open(base / file_name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)

    sizes = [len(part) for part in np.array_split(np.arange(n_train), 5)]
    for i, n in enumerate(sizes, start=1):
        dump(f"data_batch_{i}", f"training batch {i} of 5", n)
    dump("test_batch", "testing batch 1 of 1", n_test)
    meta = {"num_cases_per_batch": max(sizes), "label_names": CIFAR10_CLASSES, "num_vis": 3072}
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return base
