"""The Hydra task: what runs for each job of ``python -m downsample_study [-m] ...``.

A job whose folder already holds a completed ``results.json`` is skipped (re-running a sweep
into its folder finishes only what is missing; an interrupted job resumes from its last
checkpoint). When the launcher runs jobs side by side, each job first claims a slot
(``sweeps/slots.py``). A user error (bad config, missing data, collapsing shapes, diverged
loss) is reported in one line; any failure writes ``status: failed`` to the job's
``results.json`` and marks its W&B run failed. A single run then exits non-zero; in a multirun
the other jobs go on and ``SweepSummary`` ends the sweep with a summary and a non-zero status.

The task returns the job's ``val/acc_top1`` (None if it failed): the objective that
``hydra/sweeper=lr_search`` (Optuna) maximises.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from downsample_study.config.schema import JobMode
from downsample_study.config.store import CONFIG_DIR
from downsample_study.errors import UserError
from downsample_study.job import build_job
from downsample_study.results import Resources, Results, Status, write_results
from downsample_study.sweeps.naming import sweep_id, variant_name
from downsample_study.sweeps.slots import concurrent_jobs, job_slot
from downsample_study.training.loggers import RunIdentity, finish_wandb
from downsample_study.training.resume import completed_results

log = logging.getLogger("downsample_study")


def run_identity(cfg: DictConfig) -> RunIdentity:
    """The job's name, tags, group (its sweep) and job type (its variant) in the tracker."""
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.job.override_dirname or "default"
    group = sweep_id(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    job_type = variant_name(
        hydra_cfg.overrides.task, hydra_cfg.job.config.override_dirname.exclude_keys
    )
    tags = [str(cfg.get(key, {}).get("name", "")) for key in ("dataset", "downsample", "model")]
    return RunIdentity(name=name, tags=[t for t in tags if t], group=group, job_type=job_type)


def run_job(cfg: DictConfig) -> Results | None:
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    summary_only = cfg.get("mode") == JobMode.summary
    if not summary_only and (done := completed_results(output_dir)) is not None:
        log.info("%s: completed by an earlier run, skipped (delete its results.json to "
                 "run it again)", output_dir)
        return done
    identity = run_identity(cfg)
    slot = None
    try:
        n_slots = concurrent_jobs(hydra_cfg.launcher) if multirun else 1
        with job_slot(cfg, n_slots, Path(hydra_cfg.sweep.dir)) as slot:
            results = build_job(cfg, output_dir, identity, slot).run()
    except (Exception, KeyboardInterrupt) as err:
        finish_wandb(exit_code=1)
        user_error = isinstance(err, UserError)
        message = str(err) if user_error else f"{type(err).__name__}: {err}"
        if not summary_only:
            write_results(output_dir, Results(
                status=Status.failed,
                config=OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
                overrides=identity.name,
                error=message,
                traceback=None if user_error else traceback.format_exc(),
                resources=Resources(slot=slot.index if slot else None),
            ))
        if isinstance(err, KeyboardInterrupt) or not (multirun or user_error):
            raise
        log.error("error: %s", message)
        if not multirun:
            sys.exit(1)
        return None
    finish_wandb(exit_code=0)
    return results


def objective(results: Results | None) -> float | None:
    """What a tuning sweeper optimises: the selected checkpoint's ``val/acc_top1``."""
    if results is None or not results.completed:
        return None
    return results.val.acc_top1


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def hydra_app(cfg: DictConfig) -> float | None:
    return objective(run_job(cfg))
