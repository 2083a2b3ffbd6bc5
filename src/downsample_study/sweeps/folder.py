"""The one reader of a sweep folder: its plan, jobs, learning-rate trials and studies.

Every other reader of a sweep goes through it, so they all agree on each job's ``Status``."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from downsample_study.config.defining import defining, listed
from downsample_study.config.schema import ReportConfig
from downsample_study.console import counted
from downsample_study.errors import ResultsError, UserError
from downsample_study.layout import (
    BEST_FILE,
    CHECKPOINTS,
    OVERRIDES_FILE,
    PACKS_DIR,
    RESULTS_FILE,
    SWEEP_FILE,
    TRACKER_FOLDERS,
    TUNING_DIR,
)
from downsample_study.results import Results, Status, read_epochs, read_results
from downsample_study.runtime.locks import running_elsewhere
from downsample_study.runtime.same_job import differences_from_its_job
from downsample_study.storage import read_yaml
from downsample_study.sweeps.naming import split_overrides
from downsample_study.sweeps.plan import Plan

log = logging.getLogger(__name__)

NEVER_STARTED = "never started"
SMOKE_TEST = "a smoke test (trainer.fast_dev_run), not a result to report"


@dataclass
class JobFolder:
    """One job of a sweep, as its folder shows it."""

    name: str  # its folder, relative to the sweep (a job that never started: its overrides)
    status: Status
    error: str = ""  # why it is in that state, in a line
    results: Results | None = None
    folder: Path | None = None  # None: planned, never started
    planned: bool = True  # False: a job of an earlier sweep into the same folder

    @property
    def seed(self) -> int:
        return self.results.seed

    @functools.cached_property
    def defining(self) -> dict[str, Any]:
        """The keys of its config that define its job (``config/defining.py``)."""
        return defining(self.results.config) if self.results is not None else {}

    @functools.cached_property
    def epochs(self) -> list[dict[str, float]]:
        """Its ``epochs.csv`` rows; none, with a warning, if unreadable: the curve is only a
        view of the results."""
        try:
            return read_epochs(self.folder) if self.folder is not None else []
        except ResultsError as err:
            log.warning("%s: its validation curve is left out", err)
            return []


def read_job(folder: Path, name: str | None = None) -> JobFolder:
    """The state of the job in ``folder``, named ``name`` (by default the folder's)."""
    name = folder.name if name is None else name
    if not (folder / RESULTS_FILE).is_file():
        if running_elsewhere(folder):
            return JobFolder(name, Status.running, "running now", folder=folder)
        if any((folder / CHECKPOINTS).glob("*.ckpt")):
            return JobFolder(name, Status.killed, "killed (the same command resumes it from "
                             "its checkpoint)", folder=folder)
        return JobFolder(name, Status.not_run, "killed before its first epoch, or not "
                         "started", folder=folder)
    try:
        results = read_results(folder / RESULTS_FILE)
    except ResultsError as err:
        return JobFolder(name, Status.unreadable, str(err), folder=folder)
    state, error = results.status, (str(results.error or "").strip().splitlines() or ["?"])[0]
    if not results.completed and running_elsewhere(folder):  # resumed, or run again
        state, error = Status.running, f"running now (its last run: {results.status})"
    elif results.status == Status.interrupted:
        error = f"{error} (the sweep's command resumes it)"
    elif results.smoke_test:
        state, error = Status.smoke_test, SMOKE_TEST
    elif results.completed and (differences := differences_from_its_job(folder, results.config)):
        state, error = Status.other_config, (
            f"its results.json is a run of another configuration ({listed(differences)}), "
            f"kept; this sweep's job did not run")
    elif results.completed:
        error = ""
    return JobFolder(name, state, error, results, folder)


def others_note(count: int) -> str:
    return f"{counted(count, 'job folder')} not in this sweep's plan (another sweep's) not counted"


def job_folders(root: Path) -> list[Path]:
    """Every job folder at or below ``root`` (with ``results.json`` or Hydra's overrides), in
    path order; trackers' and hidden folders are not entered."""
    found = []

    def visit(folder: Path) -> None:
        if (folder / RESULTS_FILE).is_file() or (folder / OVERRIDES_FILE).is_file():
            found.append(folder)
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if (entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")
                    and entry.name not in TRACKER_FOLDERS):
                visit(Path(entry.path))

    visit(Path(root))
    return sorted(found)


def report_settings(jobs: list[JobFolder]) -> ReportConfig:
    """The sweep's ``report.*`` as its jobs recorded them (the schema's defaults if none did)."""
    found: dict[str, Any] = {}
    for job in jobs:
        node = (job.results.config if job.results is not None else {}).get("report") or {}
        for key, value in node.items():
            if key in ReportConfig.__dataclass_fields__ and value is not None:
                found.setdefault(key, value)
    return ReportConfig(**found)


def read_sweep_file(path: Path, without_it: str) -> Any:
    """A sweep's YAML file, or None if missing or unreadable (warning what is done without it)."""
    if not path.is_file():
        return None
    try:
        return read_yaml(path)
    except UserError as err:
        log.warning("%s: %s", err, without_it)
        return None


def _started_as(folder: Path, job: JobFolder) -> list[str] | None:
    """The overrides a job started with: Hydra's record of them, else (a record's copy that
    lost it) as its results name them; None where neither says."""
    overrides = read_sweep_file(folder / OVERRIDES_FILE, "its job is known by its results alone")
    if isinstance(overrides, ListConfig):
        return [str(o) for o in overrides]
    if job.results is None or not job.results.overrides:
        return None
    tuned = job.results.config.get("tuned") or []
    return [*split_overrides(job.results.overrides), f"tuned=[{','.join(tuned)}]"]


class SweepFolder:
    """A sweep folder, or the record of one: its plan and its jobs, trials and studies."""

    def __init__(self, path: Path, strict: bool = False, config: Any = None):
        """``strict``: an unreadable ``SWEEP_FILE`` is a ``UserError``, not a warning;
        ``config``: the sweep's own plan (a second sweep into the folder rewrites the file)."""
        self.path = Path(path)
        plan_file = self.path / SWEEP_FILE
        self.config = config if config is not None else (  # the sweep's own, in its process
            read_yaml(plan_file) if strict and plan_file.is_file() else
            read_sweep_file(plan_file, "the jobs that never started are not listed"))
        has_plan = isinstance(self.config, DictConfig) and "hydra" in self.config
        self.plan = Plan.of(self.config) if has_plan else None

    def _parts(self) -> tuple[list[Path], list[Path]]:
        """The sweep's job folders and its trials' (a pack's own folder is neither)."""
        jobs, trials = [], []
        for folder in job_folders(self.path):
            top = folder.relative_to(self.path).parts[:1]
            if top == (TUNING_DIR,):
                trials.append(folder)
            elif top != (PACKS_DIR,):
                jobs.append(folder)
        return jobs, trials

    def jobs(self, never_started: bool = False) -> list[JobFolder]:
        """Every job folder, marked planned or not; ``never_started`` adds a ``not run`` entry
        per planned job without a folder."""
        found, started = [], set()
        for folder in self._parts()[0]:
            job = read_job(folder, folder.relative_to(self.path).as_posix())
            overrides = _started_as(folder, job)
            if self.plan is not None and overrides is not None:
                named = self.plan.named(overrides)
                started.add(named)
                job.planned = named in self.plan
            found.append(job)
        if never_started and self.plan is not None:
            found += [JobFolder(",".join(sorted(job)), Status.not_run, NEVER_STARTED)
                      for job in self.plan.jobs if job not in started]
        return found

    def trials(self) -> list[JobFolder]:
        """The learning-rate trials of a tuned sweep (``hydra/sweeper=tuned``)."""
        return [read_job(folder, folder.relative_to(self.path).as_posix())
                for folder in self._parts()[1]]

    def studies(self) -> list[Path]:
        """The ``best.yaml`` of each learning-rate study that has ended."""
        return sorted(self.path.glob(f"{TUNING_DIR}/*/{BEST_FILE}"))

    def is_sweep(self) -> bool:
        """Whether the folder holds a sweep: its ``SWEEP_FILE``, or any job folder."""
        return (self.path / SWEEP_FILE).is_file() or bool(job_folders(self.path))

