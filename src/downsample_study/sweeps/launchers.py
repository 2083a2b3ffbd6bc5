"""What the launcher presets need: their resolvers and a check before a multirun starts."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from downsample_study import internals
from downsample_study.config.hydra_versions import register_resolver
from downsample_study.errors import ConfigError, no_such_key

log = logging.getLogger("downsample_study")


def default_parallel_jobs(jobs_per_gpu: int) -> int:
    """``n_jobs`` of the parallel preset: every GPU ``jobs_per_gpu`` times, else every core."""
    if jobs_per_gpu < 1:
        raise ConfigError(f"parallel.jobs_per_gpu: must be >= 1, got {jobs_per_gpu}")
    import torch  # at launch only: composing a config loads no torch

    from downsample_study.runtime.slots import available_cores

    gpus = torch.cuda.device_count()
    return gpus * jobs_per_gpu if gpus else available_cores()


def fork_workers() -> bool:
    """Make joblib's loky workers forks of this process; returns whether it was done.

    A fresh worker spends seconds importing torch and Lightning, eating short jobs' gain
    (benchmarks/RESULTS.md). Only on Linux, before CUDA is initialised (a fork could not use it).
    """
    import torch

    if sys.platform != "linux" or torch.cuda.is_initialized():
        return False
    from downsample_study.nets.kernels.library import library

    library()  # built here, not in each worker: a worker that ran the compiler later hung
    if not internals.fork_joblib_workers():
        return False
    # loky warns that fork is "not POSIX": this process has started no threads yet
    warnings.filterwarnings("ignore", message="`fork` start method should not be used")
    return True


def runs_jobs_side_by_side(launcher: DictConfig) -> bool:
    """Whether the launcher runs several jobs at once on this machine (joblib's)."""
    return str(launcher.get("_target_", "")).endswith("JoblibLauncher")


def concurrent_jobs(launcher: DictConfig) -> int:
    """How many jobs of this sweep run at the same time on this machine."""
    if not runs_jobs_side_by_side(launcher):
        return 1
    from joblib import effective_n_jobs

    return effective_n_jobs(launcher.n_jobs)


def _app(root: Any, key: str, default: Any) -> Any:
    """An app config value for a launcher preset's resolver. ``--cfg hydra`` shows the hydra
    node alone, without the app's keys: the resolver then gets their defaults."""
    return OmegaConf.select(root, key, default=default)


RESOLVERS = {  # what the launcher presets in conf/hydra/launcher/ resolve
    "parallel_jobs": lambda *, _root_: default_parallel_jobs(
        _app(_root_, "parallel.jobs_per_gpu", 1)),
    "slurm_tasks": lambda *, _root_: slurm_tasks(_app(_root_, "trainer.devices", 1)),
    "slurm_gpus": lambda *, _root_: slurm_gpus(_app(_root_, "trainer.accelerator", "auto"),
                                               _app(_root_, "trainer.devices", 1)),
}


def register_resolvers() -> None:
    """Register the presets' resolvers (the command line does, before composing)."""
    for name, resolver in RESOLVERS.items():
        register_resolver(name, resolver)


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


# The lowest value of each plugin setting that runs anything; checked before the sweep starts.
_AT_LEAST = {
    "hydra.launcher": {"timeout_min": 1, "cpus_per_task": 1, "tasks_per_node": 1,
                       "mem_gb": 1, "gpus_per_node": 0, "array_parallelism": 1, "nodes": 1},
}


SLURM_COMMANDS = ("sbatch", "srun")  # submitit submits with the one, runs tasks with the other


def _plugin_keys(node: DictConfig) -> list[str] | None:
    """The keys a launcher's or sweeper's node may have: its schema's fields, else (a YAML-only
    node, as the project's sweepers are) its class's arguments; None when it takes any."""
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        return sorted(field.name for field in dataclasses.fields(schema))
    target = node.get("_target_")
    if target is None:
        return None
    from hydra.utils import get_class

    try:
        parameters = inspect.signature(get_class(target)).parameters.values()
    except Exception:  # not a class: Hydra names the target when it builds it
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return sorted(["_target_", *(p.name for p in parameters)])


def _check_keys(node: DictConfig, prefix: str) -> None:
    """A key that the plugin does not take (``+hydra.launcher.n_job=2``): Hydra lets ``+``
    add it to the closed node, and the plugin would drop it or fail with a traceback."""
    keys = _plugin_keys(node)
    if keys is not None and (extra := [str(key) for key in node if key not in keys]):
        raise ConfigError(no_such_key(f"{prefix}.{extra[0]}", keys, parent=prefix))


def _check_settings(node: dict[str, Any], prefix: str) -> None:
    for key, low in _AT_LEAST[prefix].items():
        value = node.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < low:
            raise ConfigError(f"{prefix}.{key}: must be >= {low}, got {value}")
    if prefix == "hydra.launcher" and node.get("n_jobs") == 0:
        raise ConfigError("hydra.launcher.n_jobs: must be >= 1, or negative, counted back "
                          "from the cores as joblib does (-1: one per core, -2: all but one), "
                          "got 0")
    slurm = prefix == "hydra.launcher" and str(node.get("_target_", "")).endswith(".SlurmLauncher")
    if slurm and (missing := [cmd for cmd in SLURM_COMMANDS if shutil.which(cmd) is None]):
        raise ConfigError(f"hydra/launcher=slurm: {', '.join(missing)} not found (PATH); it "
                          f"submits from a SLURM cluster's login node (hydra/launcher=parallel "
                          f"runs the jobs on this machine)")


def _check_jobs(hydra: DictConfig) -> None:
    """A ``ConfigError`` for a sweep of no job (``seed=range(0)``: it would end as a success)
    or a value given twice (``seed=0,0``: one job launched twice)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from downsample_study.config.store import config_loader
    from downsample_study.sweeps.packing import sweep_overrides

    parser = OverridesParser.create(config_loader())  # it expands downsample=glob(*pool)
    sweeps = {o.input_line: list(o.sweep_string_iterator())
              for o in parser.parse_overrides(sweep_overrides(hydra))
              if o.is_sweep_override() and o.is_discrete_sweep()}
    for line, values in sweeps.items():
        if not values:
            raise ConfigError(f"{line}: an empty sweep, so no job to run; give it at least "
                              f"one value (range(n) counts from 0 to n - 1)")
        if twice := sorted({v for v in values if values.count(v) > 1}):
            raise ConfigError(f"{line}: {', '.join(twice)} given more than once, which would "
                              f"run the same job again; give each value once")


def _warn_more_jobs_than_cores(config: DictConfig) -> None:
    """Jobs side by side on the CPU beyond one a core train no faster (each gets one thread,
    sharing a core) and each holds its own memory: said before they start."""
    from downsample_study.runtime.slots import available_cores, uses_gpu
    from downsample_study.sweeps.packing import planned_jobs

    if not runs_jobs_side_by_side(config.hydra.launcher) or uses_gpu(config.trainer):
        return
    jobs, cores = concurrent_jobs(config.hydra.launcher), available_cores()
    planned = planned_jobs(config.hydra) if jobs > cores else None
    at_once = jobs if planned is None else min(jobs, len(planned))  # no more than it has
    if at_once > cores:
        log.warning("hydra.launcher.n_jobs=%d on %d CPU cores: the jobs beyond one a core "
                    "share cores at one thread each and hold memory of their own, so they "
                    "finish no sooner than with n_jobs=%d", jobs, cores, cores)


class LauncherCheck(Callback):
    """Before a multirun: check the launcher's, sweeper's and sweep's values, so a wrong one
    stops the sweep in one line, not a traceback; fork joblib's workers (``parallel.fork``);
    and make a signal to this process stop the sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        internals.before_jobs(wandb="wandb" in config.logger)  # before slots import torch
        from downsample_study.runtime.signals import STOPS, clear_sweep_stopped, start_sweep

        start_sweep()
        STOPS.sweep_dir = Path(config.hydra.sweep.dir)
        clear_sweep_stopped(STOPS.sweep_dir)

        if runs_jobs_side_by_side(config.hydra.launcher) and config.parallel.fork:
            fork_workers()
        packed = str(config.hydra.sweeper.get("_target_", "")).endswith("PackedSweeper")
        if str(config.pack.size) != "auto" and not packed:
            log.warning("pack.size=%s: packs are made by hydra/sweeper=packed, not by this "
                        "sweeper; every job runs alone", config.pack.size)
        try:
            _check_keys(config.hydra.launcher, "hydra.launcher")
            _check_keys(config.hydra.sweeper, "hydra.sweeper")
            launcher = OmegaConf.to_container(config.hydra.launcher, resolve=True)
            _check_settings(launcher, "hydra.launcher")
            _check_jobs(config.hydra)
        except (InterpolationResolutionError, ConfigError) as err:
            cause: BaseException | None = err
            while cause is not None and not isinstance(cause, ConfigError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            log.error("error: %s", cause)
            raise SystemExit(1) from None
        _warn_more_jobs_than_cores(config)
