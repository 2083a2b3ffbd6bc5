"""``epochs.csv``: one row of validation metrics per training epoch, whatever the logger.

The report draws its per-epoch curves from this file, so they exist for ``logger=none`` too and
need no W&B or TensorBoard reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from downsample_study.layout import EPOCHS_FILE
from downsample_study.results import EPOCH_COLUMNS, write_epoch_row


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
