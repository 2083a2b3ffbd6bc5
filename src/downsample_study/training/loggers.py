"""Experiment loggers, behind one registry: W&B (online, or offline by itself when there are
no credentials), CSV, TensorBoard or none.

Each entry is a ``Tracker``: it creates the Lightning logger and knows what the framework
does with it beyond metrics (a figure, the run's summary, where the run went). A new one is a
``Tracker`` subclass registered with its config dataclass and one YAML file in
``conf/logger/``.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from omegaconf import MISSING

from downsample_study import internals
from downsample_study.choices import Choice, as_choice
from downsample_study.registry import Registry
from downsample_study.results import Results

log = logging.getLogger(__name__)


@dataclass
class LoggerConfig:
    name: str = MISSING


class WandbMode(Choice):
    auto = "auto"  # online when credentials exist, otherwise offline with a notice
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class WandbConfig(LoggerConfig):
    project: str = "downsample_study"
    entity: str | None = None
    mode: WandbMode = WandbMode.auto
    group: str | None = None  # default: the sweep (its folder)
    job_type: str | None = None  # default: the job's overrides without the seed
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mode = as_choice(WandbMode, self.mode, "logger.mode")


@dataclass
class RunIdentity:
    """How one job shows up in the tracker."""

    name: str
    tags: list[str]
    group: str | None = None
    job_type: str = "train"
    config: dict = field(default_factory=dict)


class Tracker:
    """One kind of experiment logger; the base is "no logger"."""

    def create(self, cfg: LoggerConfig, run: RunIdentity, output_dir: Path) -> Logger | None:
        return None

    def log_figure(self, logger: Logger, name: str, figure: Figure, path: Path,
                   step: int) -> None:
        """Log a figure already saved at ``path`` (nothing, unless the tracker shows images)."""

    def log_summary(self, logger: Logger, results: Results) -> None:
        """Record the job's final numbers as the run's summary, where the tracker has one."""

    def describe(self, logger: Logger | None) -> str:
        """Where the run's metrics went, for the end-of-job message."""
        if logger is None:
            return "no experiment logger (logger=none)"
        return f"{type(logger).__name__} in {logger.log_dir}"


class CsvTracker(Tracker):
    def create(self, cfg, run, output_dir):
        return CSVLogger(save_dir=str(output_dir), name="csv", version="")


class TensorBoardTracker(Tracker):
    def create(self, cfg, run, output_dir):
        return TensorBoardLogger(save_dir=str(output_dir), name="tensorboard", version="")

    def log_figure(self, logger, name, figure, path, step):
        logger.experiment.add_figure(name, figure, global_step=step)


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
    if cfg.mode != WandbMode.auto:
        return cfg.mode.value
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_has_credentials() else "offline"


class WandbTracker(Tracker):
    def create(self, cfg: WandbConfig, run, output_dir):
        import wandb

        mode = wandb_mode(cfg)
        if cfg.mode == WandbMode.auto and mode == "offline" and not os.environ.get("WANDB_MODE"):
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
        internals.drop_wandb_anonymous_setting(logger)
        return logger

    def log_figure(self, logger, name, figure, path, step):
        logger.log_image(name, [str(path)], step=step)

    def log_summary(self, logger, results):
        summary = logger.experiment.summary
        for split in ("val", "test"):
            for name, value in vars(getattr(results, split)).items():
                summary[f"{split}/{name}"] = value
        summary["train_seconds"] = results.train_seconds
        summary["best_epoch"] = results.best_epoch

    def describe(self, logger):
        run = logger.experiment
        if run.offline:
            folder = Path(run.dir).parent
            return f"W&B offline run {folder} (upload: wandb sync {folder})"
        return f"W&B run {run.url}"


LOGGERS: Registry[Tracker] = Registry("logger")
LOGGERS.add("wandb", WandbTracker(), WandbConfig)
LOGGERS.add("csv", CsvTracker(), LoggerConfig)
LOGGERS.add("tensorboard", TensorBoardTracker(), LoggerConfig)
LOGGERS.add("none", Tracker(), LoggerConfig)


def create_logger(cfg: LoggerConfig, run: RunIdentity, output_dir: Path) -> Logger | None:
    logger = LOGGERS[cfg.name].create(cfg, run, output_dir)
    if logger is not None:
        logger.log_hyperparams(run.config)
    return logger


def finish_wandb(exit_code: int) -> None:
    """End the W&B run of this job (if any), so the next job of a sweep gets its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)
