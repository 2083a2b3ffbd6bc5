"""Checkpoints: written aside and renamed into place (a crash while saving keeps the previous
one), the newest that loads picked to resume from, and the generators kept in them, so a
resumed job on CPU ends as if never stopped."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from downsample_study.layout import BROKEN, CHECKPOINTS, LAST
from downsample_study.storage import atomic_write, storage_error

log = logging.getLogger(__name__)



class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint saving, whole or not at all through ``storage.atomic_write``:
    the temporary file is beside the checkpoint, not in the system's temp folder (where a
    killed save would leave it, on another disk)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_write(Path(path), "wb") as f:
            buffer = io.BytesIO()  # serialised whole first: a full disk is an OSError then
            torch.save(checkpoint, buffer)
            f.write(buffer.getbuffer())


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def resume_point(output_dir: Path, tidy: bool = True) -> Path | None:
    """The newest checkpoint of the job that loads, or None to start over. With ``tidy`` (main
    process only), ``*.tmp`` leftovers are removed and unloadable checkpoints renamed to
    ``<name>.broken``, so they neither block the job nor get written beside."""
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


LAST_CHECKPOINT = Path(CHECKPOINTS) / LAST  # of a job, from its folder


def epochs_trained(current_epoch: int, output_dir: Path) -> int:
    """Epochs trained. Under ``ddp_spawn`` the main process's Trainer never ran the fit loop
    (its ``current_epoch`` stays 0); the last checkpoint knows."""
    path = output_dir / LAST_CHECKPOINT
    if current_epoch or not path.is_file():
        return current_epoch
    return int(load(path)["epoch"]) + 1


class RngState(Callback):
    """Keeps the torch generators (CPU, CUDA) in checkpoints, so dropout masks after a resume
    match an uninterrupted run (the data order depends only on seed and epoch)."""

    def state_dict(self) -> dict[str, Any]:
        state = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        cuda = state_dict.get("cuda")
        if cuda is not None and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
