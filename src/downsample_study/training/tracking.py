"""Experiment loggers, behind one registry: each a ``Tracker`` that creates the Lightning
logger and does what the framework needs beyond metrics (figures, summary, where it went);
a member's ``Tracking`` holds one open run per logger chosen and speaks to all of them."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from matplotlib.figure import Figure

from downsample_study.errors import first_line
from downsample_study.evaluations.base import logged_metrics
from downsample_study.layout import CSV_DIR, RUN_ID_FILE, TENSORBOARD_DIR
from downsample_study.results import Results
from downsample_study.storage import atomic_write
from downsample_study.training.configs import LOGGERS, LoggerConfig


@dataclass(frozen=True)
class RunIdentity:
    """How one job shows up in the tracker (completed, as a new one, when its run starts)."""

    name: str
    tags: list[str]
    group: str | None = None
    job_type: str = "train"
    config: dict = field(default_factory=dict)
    run_id: str | None = None  # the same for every attempt of a job (run_id_of)
    resumed: bool = False  # this attempt goes on from a checkpoint of an earlier one
    # the epoch rows (epochs.csv) the earlier attempts logged, up to the checkpoint
    earlier_epochs: list[dict[str, float]] = field(default_factory=list)
    alongside: bool = False  # its run is open beside others of this process (a pack's members)


def run_id_of(output_dir: Path, resumed: bool) -> str:
    """The tracker run id of the job in ``output_dir``: kept across the attempts that resume
    it, a new one when the job starts over."""
    path = Path(output_dir) / RUN_ID_FILE
    if resumed and path.is_file() and (kept := path.read_text().strip()):
        return kept
    run_id = secrets.token_hex(4)
    with atomic_write(path) as f:
        f.write(run_id + "\n")
    return run_id


def summary_metrics(results: Results) -> dict[str, float]:
    """The selected checkpoint's numbers, by their logged names: a run's summary."""
    metrics = {f"{split}/{name}": value for split in ("val", "test")
               for name, value in vars(getattr(results, split)).items()}
    return {**metrics, **logged_metrics(results.evaluations),
            "train_seconds": results.train_seconds, "best_epoch": results.best_epoch}


class Tracker(ABC):
    """One kind of experiment logger: ``create`` makes its run; the other hooks default to
    what most loggers do, or to nothing."""

    @abstractmethod
    def create(self, cfg: LoggerConfig, run: RunIdentity, output_dir: Path) -> Logger:
        """The Lightning logger of one job's run."""

    def log_params(self, logger: Logger, params: dict[str, Any]) -> None:
        """Record ``params`` in the run's config (the first call may begin the run)."""
        logger.log_hyperparams(params)

    def log_figure(self, logger: Logger, name: str, figure: Figure, path: Path, step: int) -> None:
        """Log a figure already saved at ``path`` (nothing, unless the tracker shows images)."""
        return None

    def log_summary(self, logger: Logger, results: Results, output_dir: Path) -> None:
        """Record the job's final numbers as the run's summary, where the tracker has one."""
        return None

    def checkpoint_saved(self, logger: Logger, path: Path, selected: bool) -> None:
        """A checkpoint of the job was written at ``path`` (``selected``: its best so far)."""
        return None

    def replay(self, logger: Logger, rows: list[dict[str, Any]]) -> None:
        """Log again the epochs of earlier attempts, where this attempt's run lacks them."""
        return None

    def finish(self, logger: Logger, exit_code: int) -> None:
        """End the run (a pack's members end theirs one by one; a job's run ends with it)."""
        logger.finalize("success" if exit_code == 0 else "failed")

    def run_settings(self, logger: Logger) -> dict[str, Any]:
        """Where the run is, for ``results.json`` (a report logs beside it)."""
        return {}

    def describe(self, logger: Logger) -> str:
        """Where the run's metrics went, for the end-of-job message."""
        return f"{type(logger).__name__} in {logger.log_dir}"


def log_epoch_rows(logger: Logger, rows: list[dict[str, Any]]) -> None:
    """``epochs.csv`` rows as the metrics logged at each epoch's end (at its steps done)."""
    for row in rows:
        metrics = {k: v for k, v in row.items() if "/" in k}
        logger.log_metrics({**metrics, "epoch": int(row["epoch"])}, step=int(row["step"]))


class CsvTracker(Tracker):
    def create(self, cfg, run, output_dir):
        return CSVLogger(save_dir=str(output_dir), name=CSV_DIR, version="")

    def replay(self, logger, rows):
        log_epoch_rows(logger, rows)  # a new attempt writes metrics.csv anew

    def log_summary(self, logger, results, output_dir):
        # metrics.csv has no summary: the test numbers are its last row
        metrics = summary_metrics(results)
        logger.log_metrics({k: v for k, v in metrics.items() if not k.startswith("val/")})
        logger.save()


class TensorBoardTracker(Tracker):
    def create(self, cfg, run, output_dir):
        # no hp_metric of -1: the run's HParams metrics are its selected checkpoint's
        return TensorBoardLogger(save_dir=str(output_dir), name=TENSORBOARD_DIR, version="",
                                 default_hp_metric=False)

    def log_figure(self, logger, name, figure, path, step):
        logger.experiment.add_figure(name, figure, global_step=step)

    def log_summary(self, logger, results, output_dir):
        # HParams metrics are scalars: the selected epoch's val/* would be one more point on
        # the val/* curves, so they get a tag of their own
        metrics = {(f"selected/{k}" if k.startswith("val/") else k): v
                   for k, v in summary_metrics(results).items()}
        logger.log_hyperparams(dict(logger.hparams), metrics=metrics)
        logger.experiment.flush()


LOGGERS.add("csv", CsvTracker())
LOGGERS.add("tensorboard", TensorBoardTracker())


@dataclass
class OpenRun:
    name: str  # the logger's (logger.<name>)
    tracker: Tracker
    logger: Logger


@dataclass
class Tracking:
    """A member's open runs, one per logger chosen (none: logger=none); each call goes to all."""

    runs: list[OpenRun] = field(default_factory=list)

    @classmethod
    def start(cls, loggers: dict[str, LoggerConfig], run: RunIdentity,
              output_dir: Path) -> Tracking:
        """Open a run in each logger, ``run.config`` in its config and the epochs of earlier
        attempts logged again; a logger that fails to start ends those started before it."""
        tracking = cls()
        try:
            for name, cfg in loggers.items():
                tracker = LOGGERS[name]
                logger = tracker.create(cfg, run, output_dir)
                tracking.runs.append(OpenRun(name, tracker, logger))
                tracker.log_params(logger, run.config)
                if run.earlier_epochs:
                    tracker.replay(logger, run.earlier_epochs)
        except BaseException:
            tracking.finish(1)
            raise
        return tracking

    def log_params(self, params: dict[str, Any]) -> None:
        for run in self.runs:
            run.tracker.log_params(run.logger, params)

    def log_metrics(self, metrics: dict[str, float], step: int, save: bool = False) -> None:
        """``save``: written out now (an epoch's end), not when the logger's buffer fills."""
        for run in self.runs:
            run.logger.log_metrics(metrics, step=step)
            if save:
                run.logger.save()

    def log_figure(self, name: str, figure: Figure, path: Path, step: int) -> None:
        for run in self.runs:
            run.tracker.log_figure(run.logger, name, figure, path, step)

    def log_summary(self, results: Results, output_dir: Path) -> None:
        for run in self.runs:
            run.tracker.log_summary(run.logger, results, output_dir)

    def checkpoint_saved(self, path: Path, selected: bool) -> None:
        for run in self.runs:
            run.tracker.checkpoint_saved(run.logger, path, selected)

    def finish(self, exit_code: int) -> list[str]:
        """End every run, each whatever the others do; why each that failed to."""
        failures = []
        for run in self.runs:
            try:
                run.tracker.finish(run.logger, exit_code)
            except Exception as err:
                failures.append(f"{run.name}: {first_line(err)}")
        return failures

    def settings(self) -> list[dict[str, Any]]:
        """Where each run is, for ``results.json``."""
        return [{"name": run.name, **run.tracker.run_settings(run.logger)} for run in self.runs]

    def describe(self) -> str:
        """Where the metrics went, for the end-of-job message."""
        return "; ".join(run.tracker.describe(run.logger) for run in self.runs) or (
            "no experiment logger (logger=none)")
