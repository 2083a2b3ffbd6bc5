"""Experiment loggers, behind one registry: W&B (``wandb_tracker``), CSV, TensorBoard or none.

Each entry is a ``Tracker`` (``tracking``): it creates the Lightning logger and knows what the
framework does with it beyond metrics (a figure, the run's summary, where the run went). A new
one is a ``Tracker`` subclass registered with its config dataclass and one YAML file in
``conf/logger/``. The built-in loggers' dataclasses are in ``configs.py``.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from downsample_study.training.configs import LOGGERS, LoggerConfig
from downsample_study.training.tracking import (
    RunIdentity,
    Tracker,
    log_epoch_rows,
    summary_metrics,
)
from downsample_study.training.wandb_tracker import WandbTracker


class CsvTracker(Tracker):
    def create(self, cfg, run, output_dir):
        return CSVLogger(save_dir=str(output_dir), name="csv", version="")

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
        return TensorBoardLogger(save_dir=str(output_dir), name="tensorboard", version="",
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


LOGGERS.add("wandb", WandbTracker())
LOGGERS.add("csv", CsvTracker())
LOGGERS.add("tensorboard", TensorBoardTracker())
LOGGERS.add("none", Tracker())


def create_logger(cfg: LoggerConfig, run: RunIdentity, output_dir: Path) -> Logger | None:
    tracker = LOGGERS[cfg.name]
    logger = tracker.create(cfg, run, output_dir)
    if logger is not None:
        tracker.start(logger, run.config)
        if run.earlier_epochs:
            tracker.replay(logger, run.earlier_epochs)
    return logger
