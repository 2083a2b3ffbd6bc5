"""What the Hydra app needs around the jobs: where its configs live, job folders and names,
the resolvers the launcher presets use, and the end-of-sweep summary."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from downsample_study.config import ConfigError
from downsample_study.results import RESULTS_FILE, read_results

log = logging.getLogger("downsample_study")


def _config_dir() -> Path:
    """``conf/`` inside the installed package (wheel), else the repository's (editable)."""
    packaged = Path(str(resources.files("downsample_study"))) / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONFIG_DIR = _config_dir()


MAX_DIR_NAME = 150


def _shorten(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters, kept unique with a hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def job_dir_name(override_dirname: str) -> str:
    """A job's folder inside a sweep: its overrides, so a re-run maps to the same folder.

    Long names are cut and made unique with a hash of the whole (file names stop at 255).
    """
    return _shorten(override_dirname.replace("/", "_") or "default", MAX_DIR_NAME)


# W&B limits a group to 128 characters and a job type to 64.
MAX_GROUP, MAX_JOB_TYPE = 128, 64


def sweep_id(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep's jobs: its folder, relative to the working directory."""
    path = Path(sweep_dir).absolute()
    with contextlib.suppress(ValueError):  # outside the working directory: keep it whole
        path = path.relative_to(Path.cwd())
    return _shorten(path.as_posix().replace("/", "_").strip("_."), MAX_GROUP)


def variant_name(task_overrides: list[str], exclude_keys: list[str]) -> str:
    """A job's overrides without its seed: the W&B job type, shared by the seeds of a variant."""
    overrides = OverridesParser.create().parse_overrides(list(task_overrides))
    lines = sorted(
        o.input_line for o in overrides if o.key_or_group not in {*exclude_keys, "seed"}
    )
    return _shorten(",".join(lines) or "default", MAX_JOB_TYPE)


def slurm_tasks(devices: Any) -> int:
    """``tasks_per_node`` for a job on ``trainer.devices``: SLURM starts one process per device."""
    if isinstance(devices, int) and devices > 0:
        return devices
    if OmegaConf.is_list(devices) or isinstance(devices, list):
        return len(devices)
    if str(devices).isdigit() and int(devices) > 0:
        return int(devices)
    if str(devices) in ("-1", "auto"):
        raise ConfigError(
            f"trainer.devices={devices}: on SLURM give the number of devices per job "
            f"(e.g. trainer.devices=4), it sets the tasks and GPUs to request"
        )
    return 1


def slurm_gpus(accelerator: Any, devices: Any) -> int | None:
    """``gpus_per_node`` for a job: its devices when it asks for GPUs, else none."""
    return slurm_tasks(devices) if str(accelerator) in ("gpu", "cuda") else None


def ddp_strategy() -> str:
    """``ddp`` where SLURM already started one process per device (``tasks_per_node``), else
    ``ddp_spawn``: plain ``ddp`` re-runs the command line for its extra processes, which in a
    multirun re-runs the whole sweep."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    many_tasks = int(os.environ.get("SLURM_NTASKS", "1")) > 1
    return "ddp" if many_tasks and SLURMEnvironment.detect() else "ddp_spawn"


def refuse_script_relaunch(trainer: Any) -> None:
    """Stop a multirun job whose strategy would start its extra processes by re-running the
    command line (``ddp``): each of them would run the whole sweep again."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher,
    )

    launcher = getattr(trainer.strategy, "launcher", None)
    if (
        HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
        and isinstance(launcher, _SubprocessScriptLauncher)
        and launcher.num_processes > 1
        and not trainer.strategy.cluster_environment.creates_processes_externally
    ):
        raise ConfigError(
            f"trainer.strategy: {type(trainer.strategy).__name__} starts its "
            f"{launcher.num_processes} processes by re-running the command line, which in a "
            f"multirun re-runs the whole sweep; use accelerator=ddp (ddp_spawn), or SLURM with "
            f"one task per device (hydra/launcher=slurm)"
        )


def register_resolvers() -> None:
    from downsample_study.slots import default_parallel_jobs

    for name, resolver in (
        ("job_dir", job_dir_name),
        ("parallel_jobs", default_parallel_jobs),
        ("slurm_tasks", slurm_tasks),
        ("slurm_gpus", slurm_gpus),
        ("ddp_strategy", ddp_strategy),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


class LauncherCheck(Callback):
    """Before a multirun: resolve the launcher preset's values (``n_jobs``, ``tasks_per_node``,
    ...), so a wrong setting behind them stops the sweep with one line, not a traceback; and
    for the joblib launcher, start its workers as forks (``parallel.fork``)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from downsample_study.slots import fork_workers, runs_jobs_side_by_side

        if runs_jobs_side_by_side(config.hydra.launcher) and config.parallel.fork:
            fork_workers()
        try:
            OmegaConf.to_container(config.hydra.launcher, resolve=True)
        except InterpolationResolutionError as err:
            cause: BaseException | None = err
            while cause is not None and not isinstance(cause, ConfigError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            log.error("error: %s", cause)
            raise SystemExit(1) from None


MAX_LISTED_FAILURES = 20  # the summary stays on one screen


class SweepSummary(Callback):
    """After a multirun: one screen listing each job's outcome; non-zero exit if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results = sorted(sweep_dir.glob(f"*/{RESULTS_FILE}"))
        failed = []
        for path in results:
            outcome = read_results(path)
            if outcome.get("status") != "completed":
                failed.append((path.parent.name, outcome.get("error", "?")))
        log.info(
            "sweep %s: %d jobs with results, %d completed, %d failed",
            sweep_dir, len(results), len(results) - len(failed), len(failed),
        )
        for name, error in failed[:MAX_LISTED_FAILURES]:
            log.error("  failed: %s: %s", name, (error.splitlines() or ["?"])[0][:200])
        if len(failed) > MAX_LISTED_FAILURES:
            log.error("  ... and %d more (status: failed in their results.json)",
                      len(failed) - MAX_LISTED_FAILURES)
        if failed:
            raise SystemExit(1)
