"""The Lightning Trainer of a job: the user's ``trainer.*`` arguments plus what the framework
sets itself (callbacks, output folder, checkpointing)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from downsample_study.errors import ConfigError
from downsample_study.training.checkpoints import AtomicCheckpointIO
from downsample_study.training.speed import NoProfiler


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


def build_trainer(trainer: dict[str, Any], output_dir: Path,
                  callbacks: list[Callback]) -> L.Trainer:
    """The job's Trainer, with the framework's ``callbacks``: no logger (each member logs to
    its own) and no ``ModelCheckpoint`` (each member selects its own, ``members.py``)."""
    return _trainer({**trainer_args(trainer), "enable_checkpointing": False}, None, callbacks,
                    output_dir)


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


def evaluation_trainer(trainer: dict[str, Any], output_dir: Path) -> L.Trainer:
    """A Trainer that validates and tests as the job's own would (its batch limits,
    precision, device) but logs, saves and calls back nothing: what measures a member."""
    args = {**trainer_args(trainer), "enable_checkpointing": False, "enable_model_summary": False}
    return _trainer(args, None, [], output_dir)
