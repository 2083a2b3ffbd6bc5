"""The Hydra task: what runs for each job of ``python -m downsample_study [-m] ...``.

A job is one member or a pack's seeds (``pack.seeds``), each run under its own folder's lock
and skipped if that folder holds its completed ``results.json``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from downsample_study.config.schema import JobMode
from downsample_study.errors import Interrupted, JobBusy, OtherJobError, StorageError, UserError
from downsample_study.job.build import build_job
from downsample_study.job.finished import evaluate_checkpoint
from downsample_study.layout import CHECKPOINTS, CONFIG_FILE, LAST, OVERRIDES_FILE, job_dir_name
from downsample_study.results import Resources, Results, Status, write_results
from downsample_study.runtime.locks import job_lock
from downsample_study.runtime.same_job import completed_results
from downsample_study.runtime.signals import STOPS, mark_sweep_stopped, sweep_stopped
from downsample_study.runtime.slots import job_slot
from downsample_study.storage import is_storage_error, storage_error, write_yaml
from downsample_study.sweeps.launchers import concurrent_jobs
from downsample_study.sweeps.naming import override_dirname, override_key, sweep_id, variant_name
from downsample_study.sweeps.summary import summarize
from downsample_study.training.members import Member
from downsample_study.training.module import diverged
from downsample_study.training.tracking import RunIdentity

log = logging.getLogger("downsample_study")

PACK_KEYS = ("pack.seeds", "pack.id")  # set by the sweeper on a pack's job


def run_task(cfg: DictConfig) -> float | None:
    """One job, as the Hydra app runs it (``cli.hydra_app``)."""
    with STOPS.handling():
        return objective(run_job(cfg))


def objective(results: Results | None) -> float | None:
    """What a tuning sweeper optimises: the selected checkpoint's ``val/acc_top1``."""
    if results is None or not results.completed:
        return None
    return results.val.acc_top1


def run_job(cfg: DictConfig) -> Results | None:
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir)
    if multirun:
        STOPS.sweep_dir = sweep_dir
        if (signum := STOPS.signum or sweep_stopped(sweep_dir)) is not None:
            return _not_run(hydra_cfg, sweep_dir, signum)
    try:
        with contextlib.ExitStack() as locks:
            locks.enter_context(job_lock(output_dir))
            if cfg.get("mode") == JobMode.eval:
                evaluate_checkpoint(cfg, output_dir)
                return None
            if not cfg.pack.seeds:
                alone = Member(int(cfg.seed), output_dir, run_identity(cfg), cfg)
                done = _done(alone)
                return done if done is not None else _run([alone], output_dir, multirun)
            if not multirun:
                raise UserError("pack.seeds: set by hydra/sweeper=packed on the job of a "
                                "pack; to pack seeds, sweep them: -m hydra/sweeper=packed "
                                "'seed=range(8)'")
            members = [one for one in _pack_members(cfg) if _ready(one, locks)]
            if members:
                _run(members, output_dir, multirun, str(cfg.pack.id))
            return None
    except Interrupted as stop:  # recorded: exit, or stop the sweep, its lock released
        return after_stop(stop, multirun)
    except JobBusy as err:
        if not multirun:
            log.error("error: %s", err)
            sys.exit(1)
        log.info("%s: skipped here (the summary waits for it)", err)
        return None
    except (StorageError, OtherJobError, UserError) as err:
        log.error("error: %s", err)
        if not multirun:
            sys.exit(1)
        return None


def _done(one: Member) -> Results | None:
    """The member's results when an earlier run of it completed (it is skipped then); an
    ``OtherJobError`` when its folder holds another configuration's."""
    if one.cfg.get("mode") == JobMode.summary:
        return None
    resolved = OmegaConf.to_container(one.cfg, resolve=True, enum_to_str=True)
    if (done := completed_results(one.output_dir, resolved)) is not None:
        log.info("%s: completed by an earlier run, skipped (delete its results.json to run it "
                 "again)", one.output_dir)
    return done


def _pack_members(cfg: DictConfig) -> list[Member]:
    """The members of the pack ``cfg`` describes, each the job the sweep would have run for
    its seed: its config, folder (named from its own overrides) and tracker identity."""
    hydra_cfg = HydraConfig.get()
    task = [o for o in hydra_cfg.overrides.task if override_key(o) not in (*PACK_KEYS, "seed")]
    members = []
    for seed in cfg.pack.seeds:
        overrides = [*task, f"seed={seed}"]
        member_cfg = OmegaConf.merge(cfg, {"seed": seed, "pack": {"seeds": [], "id": None}})
        identity = run_identity(member_cfg, overrides)
        folder = Path(hydra_cfg.sweep.dir).absolute() / job_dir_name(identity.name)  # Hydra's
        members.append(Member(int(seed), folder, identity, member_cfg, overrides=overrides))
    return members


def _ready(one: Member, locks: contextlib.ExitStack) -> bool:
    """Whether a pack's member is to run here: not done, not another's, not running elsewhere
    (its lock held from now on, its ``.hydra/`` written as Hydra writes a job's)."""
    try:
        done = _done(one)
    except OtherJobError as err:
        log.error("error: %s", err)
        write_yaml(one.output_dir / CONFIG_FILE, one.cfg)  # so the summary counts it
        write_yaml(one.output_dir / OVERRIDES_FILE, one.overrides)
        return False
    if done is not None:
        return False
    try:
        locks.enter_context(job_lock(one.output_dir))
    except JobBusy as err:
        log.info("%s: skipped here", err)
        return False
    write_yaml(one.output_dir / CONFIG_FILE, one.cfg)
    write_yaml(one.output_dir / OVERRIDES_FILE, one.overrides)
    return True


def _run(members: list[Member], folder: Path, multirun: bool,
         pack_id: str | None = None) -> Results | None:
    """Build and run the job of ``members`` and record each outcome (completed, failed or
    stopped); returns the results of a one-member job."""
    hydra_cfg = HydraConfig.get()
    slot = job = None
    STOPS.running_job = True
    try:
        n_slots = concurrent_jobs(hydra_cfg.launcher) if multirun else 1
        with job_slot(members[0].cfg.trainer, n_slots, Path(hydra_cfg.sweep.dir)) as slot:
            job = build_job(members, folder, slot, pack_id)
            outcomes = job.run()
    except Interrupted as stop:
        for one in job.members if job else members:
            results = interrupted(one.cfg, one.identity, stop, job.stopped_at() if job else None,
                                  slot and slot.index, one.output_dir,
                                  pack=job.pack if job else None)
            log.error("%s: run the same command again to resume%s", results.error,
                      f" (from {results.resume_checkpoint})" if results.resume_checkpoint
                      else "")
            _record(one, results)
            one.finish(stop.exit_status)  # after the line: W&B keeps the console
        raise
    except (Exception, KeyboardInterrupt) as err:
        if is_storage_error(err):
            err = storage_error(err, within=folder)
        log.error("error: %s", failure(members[0].cfg, members[0].identity, err, None,
                                       status=Status.failed).error)
        for k, one in enumerate(job.members if job else members):
            own = diverged(*job.module.diverged[k]) if job and k in job.module.diverged else err
            _record(one, failure(one.cfg, one.identity, own, slot and slot.index,
                                 status=Status.failed, pack=job.pack if job else None))
            one.finish(1)  # after the line: W&B keeps the console, the error with it
        if isinstance(err, KeyboardInterrupt) or not (multirun or isinstance(err, UserError)):
            raise  # a bug: its traceback follows
        if not multirun:
            sys.exit(1)
        return None
    finally:
        STOPS.running_job = False
    for one, outcome in zip(job.members, outcomes or [], strict=False):
        if isinstance(outcome, UserError):  # a diverged member, failed as its own job would
            log.error("error: %s: %s", one.output_dir.name, outcome)
            _record(one, failure(one.cfg, one.identity, outcome, slot and slot.index,
                                 status=Status.failed, pack=job.pack))
        one.finish(1 if isinstance(outcome, UserError) else 0)
    return outcomes[0] if outcomes and len(outcomes) == 1 else None


def _record(one: Member, results: Results) -> None:
    """A member's outcome in its ``results.json`` (``mode=summary`` writes none); a disk that
    refuses it costs a line, not the sweep."""
    if one.cfg.get("mode") != JobMode.summary:
        try:
            write_results(one.output_dir, results)
        except StorageError as err:
            log.error("error: %s", err)


def failure(cfg: DictConfig, identity: RunIdentity, err: BaseException, slot_index: int | None,
            **fields) -> Results:
    """What a job that failed records: its error, and a bug's traceback."""
    user_error = isinstance(err, (UserError, Interrupted))
    return Results(config=OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
                   overrides=identity.name, group=identity.group,
                   error=str(err) if user_error else f"{type(err).__name__}: {err}",
                   traceback=None if user_error else traceback.format_exc(),
                   resources=Resources(slot=slot_index), **fields)


def interrupted(cfg, identity, stop: Interrupted, stopped_at: dict[str, int] | None,
                slot_index, output_dir: Path, **fields) -> Results:
    """What a stopped job records: where it stopped and the checkpoint it resumes from."""
    last = Path(output_dir) / CHECKPOINTS / LAST
    results = failure(cfg, identity, stop, slot_index, status=Status.interrupted,
                      signal=stop.name, stopped_at=stopped_at,
                      resume_checkpoint=str(last) if last.is_file() else None, **fields)
    at = results.stopped_at
    results.error = f"stopped by {stop.name}" + (
        f" at epoch {at['epoch']}, step {at['step']}" if at else " before training")
    return results


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


def _not_run(hydra_cfg, sweep_dir: Path, signum: int) -> None:
    """A job of a sweep that was stopped: not started (the sweep's own process ends it)."""
    log.info("%s: not run, the sweep was stopped", hydra_cfg.runtime.output_dir)
    if runs_here(hydra_cfg):  # the basic launcher would compose every remaining job first
        summarize(sweep_dir)
        raise SystemExit(128 + signum)
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
