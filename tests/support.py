"""Test-support helpers: the command line run in process, tiny synthetic datasets in real
on-disk formats, and a reader for offline W&B run files.

Plain functions, no pytest magic, so they can be used from fixtures, scripts and notebooks.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "REAL_DATA",
    "Launch",
    "WandbRun",
    "iter_wandb_records",
    "launch",
    "read_finished_wandb_run",
    "read_wandb_run",
    "read_wandb_runs",
    "results_under",
    "write_cifar10",
    "write_idx_dataset",
]

# The real MNIST/FashionMNIST for the real-data checks: where REAL_DATA_DIR points (CI sets
# it), else nowhere (those tests skip).
REAL_DATA = Path(os.environ["REAL_DATA_DIR"]) if os.environ.get("REAL_DATA_DIR") else None


# --------------------------------------------------------------------------- the command line


@dataclass
class Launch:
    exit_code: int
    output: str


def launch(args: list[str], capsys=None) -> Launch:
    """Run ``python -m downsample_study ARGS`` in this process; return its exit status (and,
    given pytest's ``capsys``, what it printed)."""
    from hydra.core.global_hydra import GlobalHydra

    from downsample_study.cli import run

    GlobalHydra.instance().clear()
    try:
        code = run(list(args))
    finally:
        GlobalHydra.instance().clear()
    output = ""
    if capsys is not None:
        captured = capsys.readouterr()
        output = captured.out + captured.err
    return Launch(code, output)


def cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m downsample_study ARGS`` in a process of its own (a launcher that forks
    workers, say), in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "downsample_study", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def signal_at_step(monkeypatch, step: int, signum: int, module_class=None) -> None:
    """Send ``signum`` to this process during training step ``step`` (0-based) of a
    ``module_class`` (the solo ``DownsampleClassifier`` by default)."""
    import os

    if module_class is None:
        from downsample_study.training.module import DownsampleClassifier as module_class
    original = module_class.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == step:
            os.kill(os.getpid(), signum)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(module_class, "training_step", training_step)


def results_under(folder: Path) -> list[dict]:
    """Every job's ``results.json`` below ``folder``, decoded, in path order (not the copies
    W&B keeps with its runs)."""
    from downsample_study.results import results_files

    return [json.loads(p.read_text()) for p in results_files(Path(folder))]

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


# --------------------------------------------------------------------------- datasets


def summarize_sweep(sweep_dir: Path, caplog) -> tuple[int, str]:
    """The sweep summary's exit status and the lines it logged (Hydra's logging config holds
    the package's logger, so the capture is attached to it for the call)."""
    from downsample_study.sweeps.summary import summarize

    sweep_log = logging.getLogger("downsample_study")
    sweep_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="downsample_study"):
            status = summarize(Path(sweep_dir))
    finally:
        sweep_log.removeHandler(caplog.handler)
    return status, caplog.text


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


# --------------------------------------------------------------------------- W&B run files

# The ``.wandb`` file is a LevelDB-style log (same framing as wandb's old Python DataStore):
# a 7-byte file header ``<4sHB`` = (b":W&B", 0xBEE1, version 0), then 32 KiB blocks of
# records with a 7-byte header ``<IHB`` = (crc32, length, type). The CRC is zlib.crc32 of the
# type byte followed by the payload. Records never straddle a block: a block tail shorter than
# a header is zero padding, and payloads longer than a block are split FIRST/MIDDLE/LAST.
_LOG_IDENT = b":W&B"
_LOG_MAGIC = 0xBEE1
_LOG_HEADER = struct.Struct("<4sHB")
_REC_HEADER = struct.Struct("<IHB")
_BLOCK_LEN = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TYPE_CRC = [zlib.crc32(bytes([t])) for t in range(_LAST + 1)]


@dataclass
class WandbRun:
    """What one offline ``run-<id>.wandb`` file says about its run.

    ``config`` and ``summary`` hold JSON-decoded values; items with a multi-part ``nested_key``
    are nested into dicts, and wandb's internal ``_wandb`` key is dropped. ``history`` has one
    dict per ``run.log`` / ``logger.log_metrics`` row (including ``_step``, ``_runtime`` and
    ``_timestamp``). ``exit_code`` is None when the file has no exit record (run not finished).
    ``output``, ``files`` and ``artifacts``: the console it captured, the files and the
    artifacts saved with it.
    """

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    output: str = ""  # what the process printed while the run was open (console capture)
    files: list[str] = field(default_factory=list)  # saved with the run (``run.save``)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (type, name)


def iter_wandb_records(path: Path, strict: bool = True) -> Iterator[Any]:
    """Yield every ``wandb_internal_pb2.Record`` stored in a ``.wandb`` file, in order.

    A truncated final record (a run killed mid-write) ends the scan quietly; a bad header or
    CRC raises ``ValueError`` when ``strict``, otherwise the bad record is skipped.
    """
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if len(data) < _LOG_HEADER.size:
        raise ValueError(f"{path}: too short for a W&B log header")
    ident, magic, version = _LOG_HEADER.unpack_from(data, 0)
    if ident != _LOG_IDENT or magic != _LOG_MAGIC or version != 0:
        raise ValueError(f"{path}: not a W&B log (header {data[:7]!r})")

    pos, pending = _LOG_HEADER.size, bytearray()
    while True:
        room = _BLOCK_LEN - pos % _BLOCK_LEN
        if room < _REC_HEADER.size:  # zero padding at a block's end
            pos += room
            continue
        if pos + _REC_HEADER.size > len(data):
            return
        checksum, length, rtype = _REC_HEADER.unpack_from(data, pos)
        start = pos + _REC_HEADER.size
        pos = start + length
        if pos > len(data):
            return  # truncated tail
        if rtype == 0 and length == 0 and checksum == 0:
            continue  # preallocated zero bytes
        chunk = data[start:pos]
        if not _FULL <= rtype <= _LAST or zlib.crc32(chunk, _TYPE_CRC[rtype]) != checksum:
            if strict:
                raise ValueError(f"{path}: corrupt record at byte {start - _REC_HEADER.size}")
            pending.clear()
            continue
        if rtype in (_FULL, _FIRST):
            pending = bytearray(chunk)
        else:
            pending += chunk
        if rtype in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(bytes(pending))
            pending.clear()
            yield record


def _item_path(item: Any) -> list[str]:
    """Return the key path of a config/summary/history item (``key`` or ``nested_key``)."""
    return [item.key] if item.key else list(item.nested_key)


def _set_path(target: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``target[k0][k1]...[kn] = value``, creating intermediate dicts."""
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[keys[-1]] = value


def _del_path(target: dict[str, Any], keys: list[str]) -> None:
    """Delete ``target[k0]...[kn]`` if present."""
    for key in keys[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(keys[-1], None)


def _apply_updates(target: dict[str, Any], record: Any) -> None:
    """Apply a ConfigRecord/SummaryRecord's ``update`` and ``remove`` items to ``target``."""
    for item in record.update:
        _set_path(target, _item_path(item), json.loads(item.value_json))
    for item in record.remove:
        _del_path(target, _item_path(item))


def read_wandb_run(path: Path) -> WandbRun:
    """Parse one ``run-<id>.wandb`` file into a :class:`WandbRun`."""
    run = WandbRun(path=Path(path))
    for record in iter_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id = r.run_id or run.run_id
            run.name = r.display_name or run.name
            run.group = r.run_group or run.group
            run.job_type = r.job_type or run.job_type
            run.project = r.project or run.project
            run.tags = list(r.tags) or run.tags
            _apply_updates(run.config, r.config)
            _apply_updates(run.summary, r.summary)
        elif kind == "config":
            _apply_updates(run.config, record.config)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set_path(row, _item_path(item), json.loads(item.value_json))
            run.history.append(row)
        elif kind == "summary":
            _apply_updates(run.summary, record.summary)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
        elif kind in ("output_raw", "output"):
            run.output += getattr(record, kind).line
        elif kind == "files":
            run.files += [item.path for item in record.files.files]
        elif kind == "artifact":
            run.artifacts.append((record.artifact.type, record.artifact.name))
    run.config.pop("_wandb", None)
    run.summary.pop("_wandb", None)
    return run


def read_finished_wandb_run(path: Path, timeout: float = 15.0) -> WandbRun:
    """``read_wandb_run`` once the file holds its exit record (or after ``timeout`` s).

    ``run.finish()`` returns before wandb's service has written the transaction log: read at
    once, a finished run's file is now and then still only its 7-byte header (1 in 30 here).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = read_wandb_run(path)
        except ValueError:  # not even the header yet
            if time.monotonic() > deadline:
                raise
        else:
            if run.exit_code is not None or time.monotonic() > deadline:
                return run
        time.sleep(0.05)


def read_wandb_runs(wandb_dir: Path) -> list[WandbRun]:
    """Parse every ``run-*.wandb`` file under ``wandb_dir`` (recursively), sorted by path, each
    once it is complete (``read_finished_wandb_run``).

    Offline runs live in ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``; the
    ``latest-run`` symlink is not followed twice.
    """
    files = {p.resolve(): p for p in Path(wandb_dir).rglob("run-*.wandb") if p.is_file()}
    return [read_finished_wandb_run(p) for p in sorted(files.values())]
