"""What the framework needs of an experiment logger: its config, how a job shows up in it,
and the ``Tracker`` interface each registered kind of logger implements."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from matplotlib.figure import Figure

from downsample_study.layout import RUN_ID_FILE
from downsample_study.results import Results
from downsample_study.storage import atomic_write
from downsample_study.training.configs import LoggerConfig


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
    from downsample_study.analysis.shift import shift_metrics

    metrics = {f"{split}/{name}": value for split in ("val", "test")
               for name, value in vars(getattr(results, split)).items()}
    return {**metrics, **(shift_metrics(results.shift) if results.shift else {}),
            "train_seconds": results.train_seconds, "best_epoch": results.best_epoch}


class Tracker:
    """One kind of experiment logger; the base is "no logger"."""

    def create(self, cfg: LoggerConfig, run: RunIdentity, output_dir: Path) -> Logger | None:
        return None

    def start(self, logger: Logger, params: dict[str, Any]) -> None:
        """Record ``params`` in the run's config."""
        logger.log_hyperparams(params)

    def log_figure(self, logger: Logger, name: str, figure: Figure, path: Path,
                   step: int) -> None:
        """Log a figure already saved at ``path`` (nothing, unless the tracker shows images)."""

    def log_summary(self, logger: Logger, results: Results, output_dir: Path) -> None:
        """Record the job's final numbers as the run's summary, where the tracker has one."""

    def checkpoint_saved(self, logger: Logger, path: Path, selected: bool) -> None:
        """A checkpoint of the job was written at ``path`` (``selected``: its best so far)."""

    def replay(self, logger: Logger, rows: list[dict[str, Any]]) -> None:
        """Log again the epochs of earlier attempts, where this attempt's run lacks them."""

    def finish(self, logger: Logger, exit_code: int) -> None:
        """End the run (a pack's members end theirs one by one; a job's run ends with it)."""
        logger.finalize("success" if exit_code == 0 else "failed")

    def run_settings(self, logger: Logger) -> dict[str, Any]:
        """Where the run is, for ``results.json`` (a report logs beside it)."""
        return {}

    def describe(self, logger: Logger | None) -> str:
        """Where the run's metrics went, for the end-of-job message."""
        if logger is None:
            return "no experiment logger (logger=none)"
        return f"{type(logger).__name__} in {logger.log_dir}"


def log_epoch_rows(logger: Logger, rows: list[dict[str, Any]]) -> None:
    """``epochs.csv`` rows as the metrics logged at each epoch's end (at its steps done)."""
    for row in rows:
        metrics = {k: v for k, v in row.items() if "/" in k}
        logger.log_metrics({**metrics, "epoch": int(row["epoch"])}, step=int(row["step"]))
