"""``python -m downsample_study [-m] key=value ...``: the Hydra entry point.

Each job runs inside ``run_job``. A job whose folder already holds a completed
``results.json`` is skipped (re-running a sweep into its folder finishes only what is
missing; an interrupted job resumes from its last checkpoint, see ``resume.py``). When the
launcher runs jobs side by side, each job first claims a slot (``slots.py``). A user error
(bad config, missing data, collapsing shapes, diverged loss) is reported in one line, any
failure writes ``status: failed`` to the job's ``results.json`` and marks its W&B run failed.
A single run then exits non-zero; in a multirun the other jobs go on and ``SweepSummary`` ends
the sweep with a summary and a non-zero status.

The task function returns the job's ``val/acc_top1`` (None if it failed): the objective that
``hydra/sweeper=lr_search`` (Optuna) maximises.
"""

from __future__ import annotations

import atexit
import os
import sys

if __name__ == "__main__":  # not in the ``__mp_main__`` of spawned worker processes
    # registered before torch, W&B, ... are imported, so that it runs after their handlers
    atexit.register(lambda: _skip_interpreter_teardown())

if not any(arg.startswith("logger=") and arg != "logger=wandb" for arg in sys.argv[1:]):
    # Every wandb.init imports wandb's launch-inputs module, whose pydantic models scan
    # sys.modules: 0.6 s before torch is imported, 1.7 s after. W&B is the default logger.
    import wandb.sdk.launch.inputs.internal  # noqa: F401

import logging
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from downsample_study.config import UserError, register_configs
from downsample_study.loggers import RunIdentity, finish_wandb
from downsample_study.results import write_results
from downsample_study.resume import completed_results
from downsample_study.slots import concurrent_jobs, job_slot
from downsample_study.sweep import CONFIG_DIR, register_resolvers, sweep_id, variant_name

log = logging.getLogger("downsample_study")

register_configs()
register_resolvers()


def _identity(cfg: DictConfig) -> RunIdentity:
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.job.override_dirname or "default"
    group = sweep_id(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    job_type = variant_name(
        hydra_cfg.overrides.task, hydra_cfg.job.config.override_dirname.exclude_keys
    )
    tags = [str(cfg.get(key, {}).get("name", "")) for key in ("dataset", "downsample", "model")]
    return RunIdentity(name=name, tags=[t for t in tags if t], group=group, job_type=job_type)


def run_job(cfg: DictConfig) -> dict[str, Any] | None:
    from downsample_study.train import run

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if cfg.get("mode") != "summary" and (done := completed_results(output_dir)) is not None:
        log.info("%s: completed by an earlier run, skipped (delete its results.json to "
                 "run it again)", output_dir)
        return done
    identity = _identity(cfg)
    slot = None
    try:
        n_slots = concurrent_jobs(hydra_cfg.launcher) if multirun else 1
        with job_slot(cfg, n_slots, Path(hydra_cfg.sweep.dir)) as slot:
            results = run(cfg, output_dir, identity, slot)
    except (Exception, KeyboardInterrupt) as err:
        finish_wandb(exit_code=1)
        user_error = isinstance(err, UserError)
        message = str(err) if user_error else f"{type(err).__name__}: {err}"
        if cfg.get("mode") != "summary":
            write_results(
                output_dir,
                {
                    "status": "failed",
                    "error": message,
                    "traceback": None if user_error else traceback.format_exc(),
                    "overrides": identity.name,
                    "config": OmegaConf.to_container(cfg, resolve=False),
                    "resources": {"slot": slot.index if slot else None},
                },
            )
        if isinstance(err, KeyboardInterrupt) or not (multirun or user_error):
            raise
        log.error("error: %s", message)
        if not multirun:
            sys.exit(1)
        return None
    finish_wandb(exit_code=0)
    return results


def objective(results: dict[str, Any] | None) -> float | None:
    """What a tuning sweeper optimises: the selected checkpoint's ``val/acc_top1``."""
    if not results or results.get("status") != "completed":
        return None
    return results["val"]["acc_top1"]


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    return objective(run_job(cfg))


_exit_status = 1  # until main() returns or exits


def _skip_interpreter_teardown() -> None:
    """Leave as soon as every other exit handler has run (W&B, loky, logging).

    The interpreter's own teardown of torch, Lightning, matplotlib and the rest takes ~1.3 s
    of every run; everything a job writes is closed by then.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


def _status(code: object) -> int:
    """The process exit status that ``sys.exit(code)`` stands for."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    try:
        main()
        _exit_status = 0
    except SystemExit as exit_:
        _exit_status = _status(exit_.code)
        raise
    except KeyboardInterrupt:
        _exit_status = 130
        raise
