"""Checkpoints that never block a job: written aside and renamed into place (a crash while
saving keeps the previous one), and on resume the newest one that loads is used, those that
do not load being set aside with a warning naming them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from downsample_study.layout import BROKEN, CHECKPOINTS, LAST
from downsample_study.storage import is_storage_error, storage_error

log = logging.getLogger(__name__)



class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save, into ``<name>.tmp`` first, then renamed over ``<name>``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if is_storage_error(err):
                raise storage_error(err, path) from None
            raise


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def resume_point(output_dir: Path, tidy: bool = True) -> Path | None:
    """The newest checkpoint of the job that loads, or None to start over.

    With ``tidy`` (the job's main process), leftover ``*.tmp`` files (a save cut short) are
    removed, and checkpoints that do not load (truncated, foreign) are renamed to
    ``<name>.broken``, so that they neither block the job nor get written beside.
    """
    folder = Path(output_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    if tidy:
        for tmp in folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
    # last.ckpt first among equals: saved right after the epoch's best, within the file
    # system's clock tick (a few ms) it has the same mtime, and the pick was then arbitrary
    newest_first = sorted(folder.glob("*.ckpt"), reverse=True,
                          key=lambda p: (p.stat().st_mtime_ns, p.name == LAST))
    for path in newest_first:
        try:
            load(path)
        except Exception as err:  # truncated or foreign: any error of torch.load
            if tidy:
                _set_aside(path, err)
            continue
        return path
    return None


def _set_aside(path: Path, err: Exception) -> None:
    aside = path.with_name(path.name + BROKEN)
    try:
        os.replace(path, aside)
    except OSError as rename_err:
        raise storage_error(rename_err, path) from None
    reason = str(err).splitlines()[0] if str(err) else ""
    log.warning("checkpoint %s does not load (%s: %s); set aside as %s", path,
                type(err).__name__, reason, aside.name)
