"""The Hydra task: what runs for each job of ``python -m downsample_study [-m] ...``.

A job runs holding its folder's lock (``sweeps/ownership.py``: a job another process is
running is skipped). A job whose folder already holds a completed ``results.json`` is skipped
(re-running a sweep into its folder finishes only what is missing; an interrupted job resumes
from its checkpoint), unless a run of another configuration wrote it (``same_job.py``): then
the job stops, and the folder is left as it is. When the launcher runs jobs side by side,
each job first claims a slot (``sweeps/slots.py``). Every outcome is written to the job's
``results.json`` and ends its W&B run with the matching exit code: completed; failed (a user
error — bad config, missing data, collapsing shapes, diverged loss, a full disk — in one
line); interrupted by SIGTERM/SIGINT (``sweeps/signals.py``). A single run then exits with
its status; in a multirun the other jobs go on after a failure, a stop ends the sweep, and
the summary (``sweeps/summary.py``) ends it with a non-zero status.

The task returns the job's ``val/acc_top1`` (None if it did not complete): the objective that
``hydra/sweeper=lr_search`` (Optuna) maximises.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from downsample_study.config.schema import JobMode
from downsample_study.errors import Interrupted, JobBusy, OtherJobError, StorageError, UserError
from downsample_study.job import build_job
from downsample_study.packing.run import after_stop, run_pack, runs_here
from downsample_study.results import Results, Status
from downsample_study.runs import evaluate_checkpoint
from downsample_study.runtime.locks import job_lock
from downsample_study.runtime.outcomes import failure, interrupted, record
from downsample_study.runtime.same_job import completed_results
from downsample_study.runtime.signals import STOPS, sweep_stopped
from downsample_study.runtime.slots import job_slot
from downsample_study.storage import is_storage_error, storage_error
from downsample_study.sweeps.launchers import concurrent_jobs
from downsample_study.sweeps.naming import override_dirname, sweep_id, variant_name
from downsample_study.sweeps.summary import summarize
from downsample_study.training.loggers import finish_wandb
from downsample_study.training.tracking import RunIdentity

log = logging.getLogger("downsample_study")


def run_identity(cfg: DictConfig, overrides: list[str] | None = None) -> RunIdentity:
    """The job's name, tags, group (its sweep) and job type (its variant) in the tracker;
    with ``overrides``, those of the job with them (a pack's member) in this sweep."""
    hydra_cfg = HydraConfig.get()
    names = hydra_cfg.job.config.override_dirname
    name = hydra_cfg.job.override_dirname or "default"
    if overrides is not None:
        name = override_dirname(overrides, list(names.exclude_keys), names.item_sep,
                                names.kv_sep) or "default"
    group = sweep_id(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    job_type = variant_name(
        hydra_cfg.overrides.task if overrides is None else overrides, names.exclude_keys
    )
    tags = [str(cfg.get(key, {}).get("name", "")) for key in ("dataset", "downsample", "model")]
    return RunIdentity(name=name, tags=[t for t in tags if t], group=group, job_type=job_type)


def run_job(cfg: DictConfig) -> Results | None:
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir)
    if multirun:
        STOPS.sweep_dir = sweep_dir
        if (signum := STOPS.signum or sweep_stopped(sweep_dir)) is not None:
            return _not_run(hydra_cfg, sweep_dir, signum)
    summary_only = cfg.get("mode") == JobMode.summary
    try:
        with job_lock(output_dir):
            if cfg.pack.seeds:
                if not multirun:
                    log.error("error: pack.seeds: set by hydra/sweeper=packed on the job of a "
                              "pack; to pack seeds, sweep them: -m hydra/sweeper=packed "
                              "'seed=range(8)'")
                    sys.exit(1)
                return run_pack(cfg, output_dir, multirun, run_identity)
            return _run_locked(cfg, output_dir, multirun, summary_only)
    except Interrupted as stop:  # recorded: exit, or stop the sweep, its lock released
        return after_stop(stop, multirun)
    except JobBusy as err:
        if not multirun:
            log.error("error: %s", err)
            sys.exit(1)
        log.info("%s: skipped here (the summary waits for it)", err)
        return None
    except (StorageError, OtherJobError) as err:
        log.error("error: %s", err)
        if not multirun:
            sys.exit(1)
        return None


def _not_run(hydra_cfg, sweep_dir: Path, signum: int) -> None:
    """A job of a sweep that was stopped: not started (the sweep's own process ends it)."""
    log.info("%s: not run, the sweep was stopped", hydra_cfg.runtime.output_dir)
    if runs_here(hydra_cfg):  # the basic launcher would compose every remaining job first
        summarize(sweep_dir)
        raise SystemExit(128 + signum)
    return None


def _run_locked(cfg: DictConfig, output_dir: Path, multirun: bool,
                summary_only: bool) -> Results | None:
    hydra_cfg = HydraConfig.get()
    if cfg.get("mode") == JobMode.eval:
        return _evaluate(cfg, output_dir, multirun)
    if not summary_only:
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        if (done := completed_results(output_dir, config)) is not None:
            log.info("%s: completed by an earlier run, skipped (delete its results.json to "
                     "run it again)", output_dir)
            return done
    identity = run_identity(cfg)
    slot = job = None
    STOPS.running_job = True
    try:
        n_slots = concurrent_jobs(hydra_cfg.launcher) if multirun else 1
        with job_slot(cfg.trainer, n_slots, Path(hydra_cfg.sweep.dir)) as slot:
            job = build_job(cfg, output_dir, identity, slot)
            results = job.run()
    except Interrupted as stop:
        results = interrupted(cfg, identity, stop, job.stopped_at() if job else None,
                               slot and slot.index, output_dir)
        log.error("%s: run the same command again to resume%s", results.error,
                  f" (from {results.resume_checkpoint})" if results.resume_checkpoint else "")
        finish_wandb(exit_code=stop.exit_status)  # after the line: W&B keeps the console
        if not summary_only:
            record(output_dir, results)
        raise
    except (Exception, KeyboardInterrupt) as err:
        if is_storage_error(err):
            err = storage_error(err)
        failed = failure(cfg, identity, err, slot and slot.index, status=Status.failed)
        reraise = isinstance(err, KeyboardInterrupt) or not (multirun or isinstance(err, UserError))
        log.error("error: %s", failed.error)  # a bug's traceback follows, when re-raised
        finish_wandb(exit_code=1)  # after the line: W&B keeps the console, the error with it
        if not summary_only:
            record(output_dir, failed)
        if reraise:
            raise
        if not multirun:
            sys.exit(1)
        return None
    finally:
        STOPS.running_job = False
    finish_wandb(exit_code=0)
    return results


def _evaluate(cfg: DictConfig, output_dir: Path, multirun: bool) -> None:
    """``mode=eval``: a finished job's checkpoint measured again, nothing trained."""
    try:
        evaluate_checkpoint(cfg, output_dir)
    except UserError as err:
        log.error("error: %s", err)
        if not multirun:
            sys.exit(1)
    return None


def objective(results: Results | None) -> float | None:
    """What a tuning sweeper optimises: the selected checkpoint's ``val/acc_top1``."""
    if results is None or not results.completed:
        return None
    return results.val.acc_top1


def run_task(cfg: DictConfig) -> float | None:
    """One job, as the Hydra app runs it (``cli.hydra_app``)."""
    with STOPS.handling():
        return objective(run_job(cfg))
