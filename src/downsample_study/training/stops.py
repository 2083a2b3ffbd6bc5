"""The training side of a stop (``sweeps/signals.py``): the fit ends at the next step
boundary with a resumable checkpoint of that step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from downsample_study.errors import Interrupted
from downsample_study.sweeps.signals import STOPS


class StopAtStepBoundary(Callback):
    """Stops a fit at the next training step once a stop was requested, and saves a resumable
    checkpoint of that step (``path``) on the way out.

    The stop comes at the start of a training batch, before any of its work: the checkpoint
    holds exactly the steps done (the data order resumes where it was, ``TensorBatches``).
    A stop during validation keeps the last epoch's checkpoint instead, which that epoch's
    validation has not changed.
    """

    def __init__(self, path: Path):
        self.path, self.saved = Path(path), False

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        STOPS.in_fit = True

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        STOPS.in_fit = False

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        STOPS.check()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule,
                     exception: BaseException) -> None:
        STOPS.in_fit = False
        stop = isinstance(exception, SIGTERMException) or (
            isinstance(exception, Interrupted) and not exception.immediate
        )
        if stop and trainer.state.fn == TrainerFn.FITTING and not trainer.validating:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved = True
