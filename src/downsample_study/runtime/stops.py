"""The training side of a stop (``signals.py``): the fit ends at the next step
boundary with a resumable checkpoint of that step."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from downsample_study.console import say
from downsample_study.errors import Interrupted
from downsample_study.runtime.signals import STOPS


class StopAtStepBoundary(Callback):
    """Stops a fit at the next training step once a stop was requested, saving a resumable
    checkpoint (``path``). The check precedes a batch's work, so the checkpoint holds exactly
    the steps done; a stop during validation keeps the epoch's checkpoint, which validation
    does not change."""

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


def fit_to_the_end_or_a_stop(parts) -> None:
    """Train ``parts`` (a job or a pack) from ``parts.resumed_from``, timed in
    ``parts.train_seconds``; a signal's stop (Lightning's on SIGTERM too) raises ``Interrupted``."""
    if parts.resumed_from is not None:
        say(f"resuming from {parts.resumed_from}")
    start = time.perf_counter()
    try:
        parts.trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=parts.resumed_from)
    except SIGTERMException:
        raise Interrupted(STOPS.signum or signal.SIGTERM) from None
    finally:
        parts.train_seconds = time.perf_counter() - start
    STOPS.check()  # asked for during the last step: training is done and saved
