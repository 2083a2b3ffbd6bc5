"""A pack's job (``pack.seeds``): trained once, each member recorded as its solo job would
be — completed, failed (a diverged member, as its solo job would have), or interrupted, with
the exit or the sweep's stop that follows a stop."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from downsample_study.errors import Interrupted, UserError
from downsample_study.packing.job import Pack
from downsample_study.results import Status
from downsample_study.runtime.outcomes import failure, interrupted, record
from downsample_study.runtime.signals import STOPS, mark_sweep_stopped
from downsample_study.runtime.slots import job_slot
from downsample_study.storage import is_storage_error, storage_error
from downsample_study.sweeps.launchers import concurrent_jobs
from downsample_study.sweeps.summary import summarize
from downsample_study.training.module import diverged

log = logging.getLogger("downsample_study")


def run_pack(cfg: DictConfig, output_dir: Path, multirun: bool, identity_of) -> None:
    """Train the pack ``cfg`` describes; ``identity_of(cfg, overrides)``: a member's tracker
    identity."""
    hydra_cfg = HydraConfig.get()
    pack = None
    STOPS.running_job = True
    try:
        with contextlib.ExitStack() as locks:
            n_slots = concurrent_jobs(hydra_cfg.launcher) if multirun else 1
            slot = locks.enter_context(job_slot(cfg, n_slots, Path(hydra_cfg.sweep.dir)))
            pack = Pack(cfg, output_dir, slot, locks, identity_of)
            if not pack.jobs:
                return None
            pack.build()
            pack.fit()
            for k, job in enumerate(pack.jobs):
                if k in pack.module.diverged:  # failed, as its solo job would have
                    err = diverged(*pack.module.diverged[k])
                    log.error("error: %s: %s", job.member.output_dir.name, err)
                    record(job.member.output_dir, failure(
                        job.cfg, job.identity, err, slot and slot.index, status=Status.failed,
                        pack=pack.info))
                    pack.finish(k, 1)
                    continue
                pack.record(k)
                pack.finish(k, 0)
    except Interrupted as stop:
        for k, job in enumerate(pack.jobs if pack else []):
            results = interrupted(job.cfg, job.identity, stop, pack.stopped_at(),
                                  pack.slot and pack.slot.index, job.member.output_dir)
            results.pack = pack.info
            record(job.member.output_dir, results)
            pack.finish(k, stop.exit_status)
        log.error("pack %s stopped by %s: run the same command again to resume",
                  cfg.pack.id, stop.name)
        raise
    except (Exception, KeyboardInterrupt) as err:
        if is_storage_error(err):
            err = storage_error(err)
        user_error = isinstance(err, UserError)
        reraise = isinstance(err, KeyboardInterrupt) or not (multirun or user_error)
        log.error("error: %s", err if user_error else f"{type(err).__name__}: {err}")
        for k, job in enumerate(pack.jobs if pack else []):
            record(job.member.output_dir, failure(job.cfg, job.identity, err,
                                                  pack.slot and pack.slot.index,
                                                  status=Status.failed, pack=pack.info))
            pack.finish(k, 1)
        if reraise:
            raise
        if not multirun:
            sys.exit(1)
    finally:
        STOPS.running_job = False
    return None


def runs_here(hydra_cfg) -> bool:
    """Whether the sweep's jobs run one after another in this process (Hydra's basic launcher)."""
    return str(hydra_cfg.launcher.get("_target_", "")).endswith("BasicLauncher")


def after_stop(stop: Interrupted, multirun: bool) -> None:
    """After a stopped job is recorded: exit, or stop the sweep."""
    hydra_cfg = HydraConfig.get()
    if not multirun:
        sys.exit(stop.exit_status)
    if runs_here(hydra_cfg):  # this process is the sweep's: the sweep stops with it
        mark_sweep_stopped(Path(hydra_cfg.sweep.dir), stop.signum)
        summarize(Path(hydra_cfg.sweep.dir))
        raise SystemExit(stop.exit_status) from None
    # a worker or a SLURM task: the sweep stops when its own process gets the signal (a
    # task requeued or preempted alone resumes on its next start)
    return None
