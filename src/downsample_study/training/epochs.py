"""``epochs.csv``: one row of validation metrics per training epoch, whatever the logger.

The report draws its per-epoch curves from this file, so they exist for ``logger=none`` too and
need no W&B or TensorBoard reader.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from downsample_study.layout import EPOCHS_FILE
from downsample_study.results import read_epochs
from downsample_study.storage import atomic_write

EPOCH_COLUMNS = ("epoch", "step", "seconds", "val/loss", "val/acc_top1", "val/acc_top2",
                 "train/loss_epoch")


class EpochMetricsWriter(Callback):
    """Writes a row after each validation pass of ``fit``; ``epoch`` counts from 1, like the
    console and ``best_epoch`` in ``results.json``; ``seconds`` since this fit began.

    A resumed job keeps the rows of the epochs it had finished and replaces the rest.
    """

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / EPOCHS_FILE

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        epoch = trainer.current_epoch + 1
        row = {
            "epoch": epoch,
            "step": trainer.global_step,
            "seconds": round(time.perf_counter() - self._start, 3),
            **{key: float(metrics[key]) for key in EPOCH_COLUMNS[3:6] if key in metrics},
            # logged after validation: taken from the module, where it is complete by now
            "train/loss_epoch": float(module.mean_train_loss()),
        }
        write_epoch_row(self.path.parent, row)


def write_epoch_row(folder: Path, row: dict[str, float]) -> None:
    """Write ``row`` as the last of ``folder/epochs.csv``, after the rows of earlier epochs
    (a resumed job replaces those of the epochs it trains again)."""
    path = Path(folder) / EPOCHS_FILE
    rows = [r for r in read_epochs(folder) if r["epoch"] < row["epoch"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, EPOCH_COLUMNS)
        writer.writeheader()
        writer.writerows([*rows, row])
