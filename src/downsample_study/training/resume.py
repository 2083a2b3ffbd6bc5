"""Re-running a sweep into the same folder: completed jobs are skipped (``same_job.py``),
interrupted jobs go on from their last checkpoint.

A job's folder is named after its overrides, so a re-run finds the same folder. Its
``results.json`` says whether it completed; ``checkpoints/last.ckpt`` (written at the end of
every epoch, and at the step where a stopped job stopped) holds the weights, optimizer, loop,
data position and ``ModelCheckpoint`` state, and with ``RngState`` the random generators, so
a resumed job on CPU ends with the same metrics as one that was never interrupted
(``checkpoints.py`` picks the checkpoint to resume from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from downsample_study.layout import CHECKPOINTS, LAST
from downsample_study.training.checkpoints import load

LAST_CHECKPOINT = Path(CHECKPOINTS) / LAST


def epochs_trained(current_epoch: int, output_dir: Path) -> int:
    """Epochs trained. Under ``ddp_spawn`` the main process's Trainer never ran the fit loop
    (its ``current_epoch`` stays 0); the last checkpoint knows."""
    path = output_dir / LAST_CHECKPOINT
    if current_epoch or not path.is_file():
        return current_epoch
    return int(load(path)["epoch"]) + 1


class RngState(Callback):
    """Saves the torch generators (CPU and CUDA) in each checkpoint and restores them on
    resume, so dropout masks after a resume are those of an uninterrupted run. (The data order
    needs nothing: it depends only on the seed and the epoch.)"""

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
