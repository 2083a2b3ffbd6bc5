"""What a job that did not complete records, and what its process does next: the failure
or stop as ``results.json`` (``failure``, ``interrupted``, ``record``), then the exit or the
sweep's stop (``after_stop``). Shared by a job (``task.py``) and a pack's members
(``packing/run.py``)."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from downsample_study.errors import Interrupted, StorageError, UserError
from downsample_study.layout import CHECKPOINTS, LAST
from downsample_study.results import Resources, Results, Status, write_results
from downsample_study.sweeps.signals import mark_sweep_stopped
from downsample_study.sweeps.summary import summarize
from downsample_study.training.tracking import RunIdentity

log = logging.getLogger("downsample_study")


def record(output_dir: Path, results: Results) -> None:
    """Write the job's results; a disk that refuses them costs a line, not the sweep."""
    try:
        write_results(output_dir, results)
    except StorageError as err:
        log.error("error: %s", err)


def failure(cfg: DictConfig, identity: RunIdentity, err: BaseException,
                slot_index: int | None, **fields) -> Results:
    user_error = isinstance(err, (UserError, Interrupted))
    return Results(
        config=OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
        overrides=identity.name,
        group=identity.group,
        error=str(err) if user_error else f"{type(err).__name__}: {err}",
        traceback=None if user_error else traceback.format_exc(),
        resources=Resources(slot=slot_index),
        **fields,
    )


def interrupted(cfg, identity, stop: Interrupted, stopped_at: dict[str, int] | None,
                slot_index, output_dir: Path | None = None) -> Results:
    last = Path(output_dir or HydraConfig.get().runtime.output_dir) / CHECKPOINTS / LAST
    results = failure(cfg, identity, stop, slot_index, status=Status.interrupted,
                       signal=stop.name, stopped_at=stopped_at,
                       resume_checkpoint=str(last) if last.is_file() else None)
    at = results.stopped_at
    results.error = f"stopped by {stop.name}" + (
        f" at epoch {at['epoch']}, step {at['step']}" if at else " before training")
    return results


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
