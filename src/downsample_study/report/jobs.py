"""The jobs of a sweep folder, as the report sees them: completed (with their results and
per-epoch metrics), failed, running now (another process holds the job's lock), a folder
without results, or never started."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import ListConfig

from downsample_study.config.defining import listed
from downsample_study.errors import ResultsError, UserError
from downsample_study.results import (
    RESULTS_FILE,
    Results,
    Status,
    read_epochs,
    read_results,
    results_files,
)
from downsample_study.runtime.locks import running_elsewhere
from downsample_study.runtime.same_job import differences_from_its_job
from downsample_study.storage import read_yaml
from downsample_study.sweeps.plan import Plan
from downsample_study.sweeps.summary import OTHER_CONFIG
from downsample_study.sweeps.tuning import TUNING_DIR

log = logging.getLogger(__name__)

NEVER_STARTED = "never started"


@dataclass
class JobOutcome:
    name: str  # the job's folder inside the sweep (its overrides)
    # completed | failed | interrupted | running | missing | duplicate | smoke test |
    # OTHER_CONFIG
    status: str
    error: str = ""
    results: Results | None = None
    epochs: list[dict[str, float]] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return self.results.seed


def sweep_plan(sweep: Path) -> Plan | None:
    """Every job the sweep was to run (from its ``multirun.yaml``)."""
    path = sweep / "multirun.yaml"
    config = load_yaml(path, "the jobs that never started are not listed")
    return Plan.of(config) if config is not None and "hydra" in config else None


def load_yaml(path: Path, without_it: str) -> Any:
    """``path`` loaded, or None (with a warning that says what the report does without it)
    when there is none or it cannot be read: a file of a sweep's, not its results."""
    if not path.is_file():
        return None
    try:
        return read_yaml(path)
    except UserError as err:
        log.warning("%s: %s", err, without_it)
        return None


def load_jobs(sweep: Path) -> list[JobOutcome]:
    """Every job under ``sweep``: with results, a folder without them, or never started."""
    jobs, started, plan = [], set(), sweep_plan(sweep)
    folders = {p.parent.parent for p in sweep.rglob(".hydra/overrides.yaml")}
    folders |= {p.parent for p in results_files(sweep)}
    for folder in sorted(folders):
        name = folder.relative_to(sweep).as_posix()
        if name.split("/")[0] == TUNING_DIR:
            continue  # a learning-rate trial (hydra/sweeper=tuned): not a test seed
        overrides = load_yaml(folder / ".hydra" / "overrides.yaml",
                               "its job is known by its results alone")
        if isinstance(overrides, ListConfig):
            started_as = [str(o) for o in overrides]
            if any(o.startswith("pack.seeds=") for o in started_as):
                continue  # a pack's own folder: its members are the jobs
            if plan is not None:
                started.add(plan.named(started_as))
        if not (folder / RESULTS_FILE).is_file():
            if running_elsewhere(folder):
                jobs.append(JobOutcome(name, "running", "running now"))
            else:
                jobs.append(JobOutcome(name, "missing", "no results.json and no process "
                                       "running it: killed or lost (the sweep's command runs "
                                       "it again)"))
            continue
        try:
            results = read_results(folder / RESULTS_FILE)
        except ResultsError as err:
            jobs.append(JobOutcome(name, "failed", str(err)))
            continue
        if not results.completed and running_elsewhere(folder):  # resumed, or run again
            jobs.append(JobOutcome(name, "running", f"running now (its last run: "
                                   f"{results.status.value})"))
            continue
        if results.status == Status.interrupted:
            error = str(results.error or "stopped by a signal").strip().splitlines()[0]
            jobs.append(JobOutcome(name, "interrupted",
                                   f"{error} (the sweep's command resumes it)", results))
            continue
        if not results.completed:
            error = str(results.error or "?").strip().splitlines()[0]
            jobs.append(JobOutcome(name, "failed", error, results))
            continue
        if results.smoke_test:
            jobs.append(JobOutcome(name, "smoke test", "trainer.fast_dev_run: not counted"))
            continue
        if differences := differences_from_its_job(folder, results.config):
            jobs.append(JobOutcome(name, OTHER_CONFIG, f"its results.json is a run of another "
                                   f"configuration ({listed(differences)}): not counted"))
            continue
        try:
            epochs = read_epochs(folder)
        except ResultsError as err:  # results.json is the record: the curve is a view of it
            log.warning("%s: its validation curve is left out", err)
            epochs = []
        jobs.append(JobOutcome(name, "completed", results=results, epochs=epochs))
    for overrides in plan.jobs if plan is not None else []:
        if overrides not in started:
            jobs.append(JobOutcome(",".join(sorted(overrides)), "missing", NEVER_STARTED))
    return jobs
