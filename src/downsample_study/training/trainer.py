"""The Lightning Trainer of a job: the user's ``trainer.*`` arguments plus what the framework
sets itself (logger, callbacks, output folder, checkpointing)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from downsample_study.console import say
from downsample_study.errors import ConfigError
from downsample_study.layout import BEST_PREFIX
from downsample_study.training.checkpoints import AtomicCheckpointIO
from downsample_study.training.resume import LAST_CHECKPOINT
from downsample_study.training.speed import NoProfiler

MONITOR = "val/acc_top1"  # model selection: the checkpoint of the best epoch on it


class EpochProgress(Callback):
    """One line per epoch when there is no interactive progress bar (logs, sweeps, SLURM)."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()  # a fit resumed mid-epoch gets no epoch start

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        # the epoch's mean training loss, not the last logged window's
        metrics = {**trainer.callback_metrics, "train/loss": module.mean_train_loss()}
        shown = "  ".join(
            f"{key} {metrics[key].item():.4f}"
            for key in ("train/loss", "val/loss", MONITOR)
            if key in metrics
        )
        say(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}  "
            f"({time.perf_counter() - self._start:.1f} s)"
        )


def trainer_args(trainer: dict[str, Any]) -> dict[str, Any]:
    """The user's Trainer arguments with the framework's defaults for those left unset."""
    args = dict(trainer)
    args.setdefault("enable_progress_bar", sys.stderr.isatty())
    if args.get("profiler") is None:
        args["profiler"] = NoProfiler()
    plugins = args.get("plugins") or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    args["plugins"] = plugins
    return args


def best_checkpoint(output_dir: Path) -> ModelCheckpoint:
    """Keeps the best epoch on ``val/acc_top1`` and, for resume, the last one."""
    return ModelCheckpoint(
        dirpath=output_dir / LAST_CHECKPOINT.parent,
        filename=BEST_PREFIX + "{epoch}",
        auto_insert_metric_name=False,
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,  # a re-run overwrites, it never writes -v1 beside
    )


def build_trainer(trainer: dict[str, Any], output_dir: Path, logger,
                  callbacks: list[Callback]) -> L.Trainer:
    """The job's Trainer, with the framework's ``callbacks`` (and an epoch line where there
    is no progress bar)."""
    args = trainer_args(trainer)
    if not args["enable_progress_bar"]:
        callbacks = [*callbacks, EpochProgress()]
    return _trainer(args, logger, callbacks, output_dir)


def _trainer(args: dict[str, Any], logger, callbacks: list[Callback],
             output_dir: Path) -> L.Trainer:
    """``L.Trainer``; arguments Lightning refuses are the user's ``trainer.*`` (one line)."""
    try:
        return L.Trainer(**args, logger=logger or False, callbacks=callbacks,
                         default_root_dir=str(output_dir))
    except (MisconfigurationException, TypeError, ValueError, RuntimeError, ImportError) as err:
        # ImportError: an accelerator whose package is not installed (trainer.accelerator=tpu)
        import torch

        gpus = torch.cuda.device_count()
        raise ConfigError(f"trainer: {err} (trainer.accelerator={args.get('accelerator')}, "
                          f"trainer.devices={args.get('devices')}; this machine has {gpus} "
                          f"CUDA GPU{'' if gpus == 1 else 's'} and {os.cpu_count()} CPUs)"
                          ) from None


def pack_trainer(trainer: dict[str, Any], output_dir: Path,
                 callbacks: list[Callback]) -> L.Trainer:
    """A pack's Trainer: the job's ``trainer.*``, no logger (each member has its own) and no
    ``ModelCheckpoint`` (each member selects its own, ``packing/outputs.py``)."""
    return _trainer({**trainer_args(trainer), "enable_checkpointing": False}, None, callbacks,
                    output_dir)


def evaluation_trainer(trainer: dict[str, Any], output_dir: Path) -> L.Trainer:
    """A Trainer that validates and tests as the job's own would (its batch limits,
    precision, device) but logs, saves and calls back nothing: a pack's member is measured
    with it as its solo job measures itself."""
    args = {**trainer_args(trainer), "enable_checkpointing": False, "enable_model_summary": False}
    return _trainer(args, None, [], output_dir)


def best_epoch(checkpoint: ModelCheckpoint) -> int | None:
    """The selected checkpoint's epoch, counted from 1 (its file name has it)."""
    path = Path(checkpoint.best_model_path or "")
    digits = path.stem.removeprefix(BEST_PREFIX)
    return int(digits) if digits.isdigit() else None
