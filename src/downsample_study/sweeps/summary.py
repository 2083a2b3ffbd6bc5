"""The end of a multirun: each job's outcome on one screen and the sweep's exit status, once
the jobs another process runs (a second sweep into the folder) have ended."""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from downsample_study.console import counted
from downsample_study.layout import TUNING_DIR
from downsample_study.results import Status
from downsample_study.runtime.locks import wait_for_others
from downsample_study.runtime.signals import STOPS, sweep_stopped
from downsample_study.sweeps.folder import SweepFolder, others_note

log = logging.getLogger("downsample_study")

MAX_LISTED = 20  # the summary stays on one screen


# this process's sweeps: each one's own plan, which another sweep into its folder rewrites
PLANS: dict[Path, DictConfig] = {}


def summarize(sweep_dir: Path) -> int:
    """Log the sweep's outcome; return its exit status."""
    stopped = sweep_stopped(sweep_dir)
    sweep = SweepFolder(sweep_dir, config=PLANS.get(Path(sweep_dir).absolute()))
    every = sweep.jobs()
    if stopped is None:
        running = [job.folder for job in every if job.planned and job.status == Status.running]
        if running:  # another process's jobs: their outcome, once they end
            wait_for_others(running)
            every = sweep.jobs()
        stopped = STOPS.signum or sweep_stopped(sweep_dir)  # a stop ends the wait
    jobs = [job for job in every if job.planned]
    counts = Counter(job.status for job in jobs)
    completed = counts[Status.completed] + counts[Status.smoke_test]
    without = counts[Status.not_run] + counts[Status.killed]
    line = (f"sweep {sweep_dir}: {counted(len(jobs) - without, 'job')} with results, "
            f"{completed} completed, {counts[Status.failed]} failed")
    if counts[Status.smoke_test]:
        line = line.replace(" completed,", f" completed ({counts[Status.smoke_test]} of them "
                                           "smoke tests: trainer.fast_dev_run),", 1)
    line += "".join(f", {counts[s]} {s}" for s in (Status.interrupted, Status.running,
                                                   Status.unreadable, Status.other_config)
                    if counts[s])
    if without:
        line += f"; {without} without: " + ", ".join(
            f"{counts[s]} {s}" for s in (Status.not_run, Status.killed) if counts[s])
    studies_alone = sweep.plan is not None and not sweep.plan.jobs  # tune_only (lr_search)
    if trials := sweep.trials():
        done = sum(trial.status == Status.completed for trial in trials)
        tuned = (f"{counted(len(trials), 'learning-rate trial')} under {TUNING_DIR}/, "
                 f"{done} completed")
        if studies_alone:
            line = (f"sweep {sweep_dir}: {tuned}; "
                    f"{counted(len(sweep.studies()), 'study', 'studies')} ended with a best rate")
        else:
            line += f"; and {tuned}"
    if others := len(every) - len(jobs):
        line += f"; {others_note(others)}"
    log.info("%s", line)
    unfinished = [job for job in jobs if job.status not in (Status.completed, Status.smoke_test)]
    for job in unfinished[:MAX_LISTED]:
        log.error("  %s: %s: %s", job.status, job.name, job.error[:200])
    if len(unfinished) > MAX_LISTED:
        log.error("  ... and %d more (in their results.json)", len(unfinished) - MAX_LISTED)
    if stopped is not None:
        log.error("the sweep was stopped by a signal: run the same command to finish it")
        return 128 + stopped
    if completed or (studies_alone and sweep.studies()):
        log.info("its report (verdicts, plots): python -m downsample_study.report %s",
                 shlex.quote(str(sweep_dir)))
    return 1 if unfinished else 0


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        PLANS[Path(config.hydra.sweep.dir).absolute()] = config

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("mode") == "summary":  # layer tables only: no job writes results
            return
        status = summarize(Path(config.hydra.sweep.dir))
        if status:
            raise SystemExit(status)
