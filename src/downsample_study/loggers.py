"""Experiment loggers: W&B (online, or offline by itself when there are no credentials),
CSV, TensorBoard or none."""

from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from downsample_study.config import LoggerConfig, WandbConfig

log = logging.getLogger(__name__)


@dataclass
class RunIdentity:
    """How one job shows up in the tracker."""

    name: str
    tags: list[str]
    group: str | None = None
    job_type: str = "train"
    config: dict = field(default_factory=dict)


def wandb_has_credentials() -> bool:
    """True when W&B could log in without asking: an API key in the env or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(cfg: WandbConfig) -> str:
    if cfg.mode != "auto":
        return cfg.mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_has_credentials() else "offline"


def create_logger(cfg: LoggerConfig, run: RunIdentity, output_dir: Path) -> Logger | None:
    if cfg.name == "none":
        return None
    if cfg.name == "csv":
        logger = CSVLogger(save_dir=str(output_dir), name="csv", version="")
    elif cfg.name == "tensorboard":
        logger = TensorBoardLogger(save_dir=str(output_dir), name="tensorboard", version="")
    else:
        logger = _wandb_logger(cfg, run, output_dir)
    logger.log_hyperparams(run.config)
    return logger


def _wandb_logger(cfg: WandbConfig, run: RunIdentity, output_dir: Path) -> WandbLogger:
    import wandb

    mode = wandb_mode(cfg)
    if cfg.mode == "auto" and mode == "offline" and not os.environ.get("WANDB_MODE"):
        log.warning(
            "W&B: no credentials found (WANDB_API_KEY or `wandb login`), logging offline to "
            "%s/wandb; upload later with: wandb sync %s/wandb/offline-run-*",
            output_dir, output_dir,
        )
    logger = WandbLogger(
        project=cfg.project,
        entity=cfg.entity,
        name=run.name,
        group=cfg.group or run.group,
        job_type=cfg.job_type or run.job_type,
        tags=sorted({*run.tags, *cfg.tags}),
        save_dir=str(output_dir),
        mode=mode,
        settings=wandb.Settings(silent=True, console="off", init_timeout=60),
    )
    # WandbLogger always passes anonymous=None, which this wandb warns about on every run.
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_wandb(exit_code: int) -> None:
    """End the W&B run of this job (if any), so the next job of a sweep gets its own run."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def describe(logger: Logger | None) -> str:
    """Where the run's metrics went, for the end-of-job message."""
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        if run.settings.mode == "offline" or getattr(run.settings, "_offline", False):
            folder = Path(run.dir).parent
            return f"W&B offline run {folder} (upload: wandb sync {folder})"
        return f"W&B run {run.url}"
    if logger is not None:
        return f"{type(logger).__name__} in {logger.log_dir}"
    return "no experiment logger (logger=none)"
