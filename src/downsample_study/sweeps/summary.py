"""The end of a multirun: one screen listing each job's outcome, and the sweep's exit status.

Every job folder of the sweep's plan counts: completed, failed, interrupted, with an
unreadable ``results.json``, or without one (killed, or not run because the sweep was
stopped); an earlier sweep's folders in the same folder are named apart, not counted. Jobs
that another process is running (a second sweep into the same folder) are waited for. The
status is non-zero when any job did not complete: 128 + the signal when the sweep was
stopped by one, else 1.
"""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from downsample_study.config.defining import listed
from downsample_study.console import counted
from downsample_study.errors import ResultsError, UserError
from downsample_study.layout import CHECKPOINTS
from downsample_study.results import RESULTS_FILE, Status, read_results
from downsample_study.runtime.locks import wait_for_others
from downsample_study.runtime.same_job import differences_from_its_job
from downsample_study.runtime.signals import sweep_stopped
from downsample_study.storage import read_yaml
from downsample_study.sweeps.plan import Plan
from downsample_study.sweeps.record import SWEEP_FILE
from downsample_study.sweeps.tuning import TUNING_DIR

log = logging.getLogger("downsample_study")

MAX_LISTED = 20  # the summary stays on one screen
OTHER_CONFIG = "of another configuration"
SMOKE_TEST = "a smoke test (trainer.fast_dev_run), not a result to report"


def job_folders(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders: those Hydra started (``.hydra``) or with results."""
    folders = {p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
    folders |= {p.parent for p in sweep_dir.glob(f"*/{RESULTS_FILE}")}
    return sorted(folders)


def _outcome(folder: Path) -> tuple[str, str]:
    """(status, reason) of one job folder."""
    if not (folder / RESULTS_FILE).is_file():
        if any((folder / CHECKPOINTS).glob("*.ckpt")):
            return "no results", "killed (the same command resumes it from its checkpoint)"
        return "not run", "killed before its first epoch, or not started"
    try:
        results = read_results(folder / RESULTS_FILE)
    except ResultsError as err:
        return "unreadable", str(err)
    if results.status == Status.interrupted:
        at = results.stopped_at or {}
        return "interrupted", (f"by {results.signal} at epoch {at.get('epoch', '?')}, step "
                               f"{at.get('step', '?')} (run the same command to resume)")
    if results.completed and (differences := differences_from_its_job(folder, results.config)):
        return OTHER_CONFIG, (f"its results.json is a run of another configuration "
                              f"({listed(differences)}), kept; this sweep's job did not run")
    if results.smoke_test:
        return str(results.status), SMOKE_TEST
    return str(results.status), results.error or ""


def _trials(sweep_dir: Path) -> str:
    """The learning-rate trials of a tuned sweep (hydra/sweeper=tuned), not jobs of its own."""
    trials = [folder for study in sorted((sweep_dir / TUNING_DIR).glob("*/"))
              for folder in job_folders(study)]
    if not trials:
        return ""
    done = sum(_outcome(folder)[0] == "completed" for folder in trials)
    return (f"; and {counted(len(trials), 'learning-rate trial')} under {TUNING_DIR}/, "
            f"{done} completed")


def _plan(sweep_dir: Path) -> Plan | None:
    """The jobs the sweep planned (its ``multirun.yaml``), None where that cannot be read."""
    try:
        config = read_yaml(sweep_dir / SWEEP_FILE)
    except UserError:
        return None
    has_hydra = isinstance(config, DictConfig) and config.get("hydra") is not None
    return Plan.of(config) if has_hydra else None


def summarize(sweep_dir: Path) -> int:
    """Log the sweep's outcome; return its exit status."""
    stopped = sweep_stopped(sweep_dir)
    plan = _plan(sweep_dir)
    every = job_folders(sweep_dir)
    folders = [folder for folder in every if plan is None or plan.has(folder)]
    earlier = len(every) - len(folders)
    if stopped is None:
        wait_for_others(folders)
    outcomes = [(folder.name, *_outcome(folder)) for folder in folders]
    counts = Counter(status for _, status, _ in outcomes)
    without = counts["not run"] + counts["no results"]
    line = (f"sweep {sweep_dir}: {counted(len(outcomes) - without, 'job')} with results, "
            f"{counts['completed']} completed, {counts['failed']} failed")
    if smoke := sum(reason == SMOKE_TEST for _, _, reason in outcomes):
        line = line.replace(" completed,", f" completed ({smoke} of them smoke tests: "
                                           "trainer.fast_dev_run),", 1)
    line += "".join(f", {counts[s]} {s}" for s in ("interrupted", "unreadable", OTHER_CONFIG)
                    if counts[s])
    if without:
        line += f"; {without} without: " + ", ".join(
            f"{counts[s]} {s}" for s in ("not run", "no results") if counts[s])
    line += _trials(sweep_dir)
    if earlier:
        line += (f"; {earlier} job folders not in this sweep's plan (an earlier sweep's into "
                 f"this folder) not counted")
    log.info("%s", line)
    unfinished = [o for o in outcomes if o[1] != "completed"]
    for name, status, reason in unfinished[:MAX_LISTED]:
        log.error("  %s: %s: %s", status, name, (reason.splitlines() or ["?"])[0][:200])
    if len(unfinished) > MAX_LISTED:
        log.error("  ... and %d more (in their results.json)", len(unfinished) - MAX_LISTED)
    if stopped is not None:
        log.error("the sweep was stopped by a signal: run the same command to finish it")
        return 128 + stopped
    if counts["completed"]:
        log.info("its report (verdicts, plots): python -m downsample_study.report %s",
                 shlex.quote(str(sweep_dir)))
    return 1 if unfinished else 0


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("mode") == "summary":  # layer tables only: no job writes results
            return
        status = summarize(Path(config.hydra.sweep.dir))
        if status:
            raise SystemExit(status)
