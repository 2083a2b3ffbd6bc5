"""A reader for offline W&B run files: the records a run wrote, decoded into what a
reviewer would see on its page."""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
