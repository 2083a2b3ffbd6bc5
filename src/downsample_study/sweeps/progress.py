"""How far a sweep has got, read from its folder alone, while it runs or after it died.

The pace counts the current run's recent results only, so the time left reflects this machine
as it is now; the running jobs' speed per epoch gives an estimate that a pause does not skew.

    downsample-study progress SWEEP   # or python -m downsample_study.sweeps.progress SWEEP
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from downsample_study.console import SideParser, command_name, side_command
from downsample_study.errors import UserError, not_a_folder
from downsample_study.layout import BEST_FILE, RESULTS_FILE, SWEEP_FILE, TUNING_DIR
from downsample_study.results import Status
from downsample_study.runtime.locks import is_primary
from downsample_study.sweeps.folder import JobFolder, SweepFolder, others_note
from downsample_study.sweeps.packing import alone
from downsample_study.sweeps.plan import sweep_jobs, tuned_search, tunes_only
from downsample_study.sweeps.running import JobEpochs, job_epochs, seconds_left, where
from downsample_study.sweeps.tuning import variants

log = logging.getLogger("downsample_study")

PACE_WINDOW_S = 3600.0  # the pace: the results of the last hour of the current run ...
MIN_PACE_S = 300.0  # ... once that run is at least this old
SWEEPER_CLASS = "hydra.sweeper._target_"


@dataclass
class Stage:
    """The jobs of one stage of a sweep: its learning-rate trials, or its test jobs."""

    name: str
    planned: int | None  # None: the sweeper's plan cannot be read from its SWEEP_FILE
    counts: dict[Status, int] = field(default_factory=dict)
    running: list[JobEpochs] = field(default_factory=list)  # how far each running job is
    finished_at: list[float] = field(default_factory=list)  # results.json times, finished jobs
    # job folders in the sweep folder that its plan does not have (an earlier sweep's)
    not_planned: int = 0

    def add(self, job: JobFolder) -> None:
        if job.results is not None:
            status = job.results.status
            self.counts[status] = self.counts.get(status, 0) + 1
            if status != Status.interrupted:
                self.finished_at.append((job.folder / RESULTS_FILE).stat().st_mtime)
        if job.status == Status.running:
            self.running.append(job_epochs(job.folder))

    @property
    def finished(self) -> int:
        return self.counts.get(Status.completed, 0) + self.counts.get(Status.failed, 0)

    @property
    def left(self) -> int | None:
        return None if self.planned is None else max(self.planned - self.finished, 0)


@dataclass
class Progress:
    sweep: Path
    sweeper: str  # its option name (tuned, packed, basic) or class
    started: float  # the current (or last) run's start
    studies: tuple[int, int | None] | None  # (with a best rate, planned); None: not tuned
    stages: list[Stage]
    summary_only: bool = False  # mode=summary: its jobs print layer tables, record nothing

    @property
    def running(self) -> int:
        return sum(len(stage.running) for stage in self.stages)

    @property
    def done(self) -> bool:
        return all(stage.left == 0 for stage in self.stages)

    @property
    def current(self) -> Stage | None:
        """The first stage with jobs left: its own pace gives the time left."""
        return next((stage for stage in self.stages if stage.left), None)


def read_progress(sweep: Path, config: DictConfig | None = None,
                  started: float | None = None) -> Progress:
    """The sweep's progress (``config``, ``started``: its own plan and start, in its process);
    a ``UserError`` if ``sweep`` is not a sweep folder."""
    sweep = Path(sweep)
    path = sweep / SWEEP_FILE
    if not sweep.is_dir():
        raise UserError(f"{sweep}: {not_a_folder(sweep)} (a sweep folder: hydra.sweep.dir)")
    folder = SweepFolder(sweep, strict=True, config=config)
    if not path.is_file() and config is None:  # lost: the job folders still say how far
        if not folder.is_sweep():
            raise UserError(f"{sweep}: no {SWEEP_FILE} and no job folder, so not a sweep "
                            f"folder (hydra.sweep.dir), or its sweep has not started")
        jobs, stage = folder.jobs(), Stage("jobs", None)
        for job in jobs:
            stage.add(job)
        started = min((j.folder.stat().st_mtime for j in jobs), default=time.time())
        return Progress(sweep, f"unknown: no {SWEEP_FILE}", started, None, [stage])
    config = folder.config
    for key in (SWEEPER_CLASS, "hydra.overrides.task"):
        if not isinstance(config, DictConfig) or OmegaConf.select(config, key) is None:
            raise UserError(f"{path}: no {key}, so not the config a multirun saves")
    plan = folder.plan
    target = OmegaConf.select(config, SWEEPER_CLASS).rsplit(".", 1)[-1]
    sweeper = target.removesuffix("Sweeper").lower() if plan is not None else target
    stages, studies = [], None
    if (search := tuned_search(config)) is not None:
        n_studies = None if plan is None else len(variants(sweep_jobs(config)))
        trials = Stage("learning-rate trials",
                       None if n_studies is None else n_studies * search.trials)
        for trial in folder.trials():
            trials.add(trial)
        studies = (len(folder.studies()), n_studies)
        stages.append(trials)
    tests = Stage("test jobs" if search else "jobs", None if plan is None else len(plan.jobs))
    for job in folder.jobs():
        if job.planned:
            tests.add(job)
        else:
            tests.not_planned += 1
    if not tunes_only(config):  # the lr_search preset: its studies alone
        stages.append(tests)
    return Progress(sweep, sweeper, started or path.stat().st_mtime, studies, stages,
                    summary_only=str(config.get("mode")) == "summary")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 24 else f"{seconds / 86400:.1f} days"


def _clock(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def pace(stage: Stage, started: float, now: float) -> float | None:
    """Jobs finished per second in the current run's last hour, or its last two rounds of
    concurrent jobs if longer (packs finish in bursts: an hour may hold one or three); None
    while the run is under ``MIN_PACE_S`` old or has finished nothing of ``stage``."""
    since = max(started, now - PACE_WINDOW_S)
    if now - since < MIN_PACE_S:
        return None
    done = sorted(t for t in stage.finished_at if started <= t <= now)
    rounds = 2 * len(stage.running)
    if rounds and len(done) > rounds and done[-rounds - 1] < since:
        since = done[-rounds - 1]  # from a finish: the jobs after it are the last two rounds
        return rounds / (now - since)
    recent = sum(since <= t for t in done)
    return recent / (now - since) if recent else None


def _of(planned: int | None) -> str:
    return "" if planned is None else f" of {planned}"


def _stage_line(stage: Stage) -> str:
    line = f"{stage.name}: {stage.finished}{_of(stage.planned)} finished"
    details = [f"{stage.counts.get(status, 0)} {status}" for status in Status
               if stage.counts.get(status) or status == Status.completed]
    line = f"{line} ({', '.join(details)}); {len(stage.running)} running now"
    if stage.running:
        line += f", {where(stage.running)}"
    if stage.not_planned:
        line += f"; {others_note(stage.not_planned)}"
    return line


def describe(progress: Progress, now: float | None = None) -> list[str]:
    """The lines ``main`` prints."""
    now = time.time() if now is None else now
    lines = [f"{progress.sweep} (hydra/sweeper={progress.sweeper}): this run started "
             f"{_clock(progress.started)}"]
    if progress.studies is not None:
        best, planned = progress.studies
        lines.append(f"learning-rate studies: {best}{_of(planned)} with their best rate "
                     f"({TUNING_DIR}/*/{BEST_FILE})")
    lines += [_stage_line(stage) for stage in progress.stages]
    if progress.summary_only:
        return [*lines, "mode=summary: its jobs print their layer tables and record nothing "
                        "to count"]
    if progress.done:
        lines.append("done: every planned job finished")
        return lines
    finished = [t for stage in progress.stages for t in stage.finished_at]
    last = f"; the last job finished {_clock(max(finished))}" if finished else ""
    if not progress.running:
        lines.append(f"no job is running now{last}: if the sweep is not between two "
                     "launches it has stopped; its own command goes on with it")
    if (pace_line := _pace_line(progress, now)) is not None:
        lines.append(pace_line)
    return lines


def _eta(stage: Stage, rate: float) -> str:
    return (f"{stage.name}: {rate * 3600:.1f} an hour lately; the {stage.left} left take about "
            f"{_duration(stage.left / rate)} at that pace")


def _pace_line(progress: Progress, now: float) -> str | None:
    """The current stage's pace and time left (or why there is none yet), and the time left
    at the running jobs' speed per epoch, which a pause or a slow start does not skew."""
    if (stage := progress.current) is None:
        return None
    if (rate := pace(stage, progress.started, now)) is not None:
        line = _eta(stage, rate)
    else:
        age = now - progress.started
        why = ("none finished in this run's last hour" if age >= MIN_PACE_S else
               "this run started less than a minute ago" if age < 60 else
               f"this run started {_duration(age)} ago")
        line = f"{stage.name}: no pace yet ({why})"
    if stage.left and (seconds := seconds_left(stage.running, stage.left)) is not None:
        line += (f"; at the running jobs' speed per epoch, the {stage.left} left take about "
                 f"{_duration(seconds)}, training alone")
    return line


def one_line(progress: Progress, now: float | None = None) -> str:
    """The progress in a line, with the time left once there is a pace: logged as jobs end."""
    now = time.time() if now is None else now
    counts = ", ".join(f"{stage.name} {stage.finished}{_of(stage.planned)}"
                       for stage in progress.stages)
    line = f"sweep progress: {counts} finished, {progress.running} running"
    stage = progress.current
    if stage is not None and (rate := pace(stage, progress.started, now)) is not None:
        line += f"; {_eta(stage, rate)}"
    return line


class SweepProgress(Callback):
    """After each job of a multirun, the sweep's progress in a line (console and job log)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.plan, self.started = config, time.time()  # its own: another sweep may rewrite

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN or alone(config) is not None or not is_primary():
            return
        try:
            progress = read_progress(Path(config.hydra.sweep.dir), getattr(self, "plan", None),
                                     getattr(self, "started", None))
        except (UserError, OSError):  # the sweep goes on: this line is all it misses
            return
        log.info("%s", one_line(progress))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command on ``argv`` (the command line's by default), named ``prog`` in its usage."""
    parser = SideParser(
        prog=prog or command_name("downsample_study.sweeps.progress"),
        description="How far a sweep has got: its planned, finished and running jobs, and "
                    "at the pace of the last hour, about how long the rest will take.")
    parser.add_argument("sweep", type=Path, help="the sweep folder (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    return side_command(lambda: print("\n".join(describe(read_progress(args.sweep)))),
                        stopped="nothing read")


if __name__ == "__main__":
    sys.exit(main())
