"""Every use of a library's private internals, in one module.

Each can be done without: where its internal has moved it is skipped (one debug line), and
``tests/test_internals.py`` fails so that the upgrade is noticed. Process-wide ones are switched
on by the entry point and before the first job, never at import. Gains: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
_reported: set[str] = set()


def _unavailable(touch: str, err: BaseException) -> None:
    if touch not in _reported:
        _reported.add(touch)
        log.debug("%s: not applied, the internal it relies on has moved (%s: %s)",
                  touch, type(err).__name__, err)


# --- process-wide, switched on by the entry point -------------------------------------------


def share_config_store_in_copies() -> None:
    """Let Hydra's copies of its config repository share the one ConfigStore.

    Hydra 1.3 deep-copies the repository, every schema node of the store included, each time it
    lists a group's options or loads a config (about a hundred times for ``--help``), though the
    store is a read-only singleton. Hydra's main branch shares it too (facebookresearch/hydra#2928).
    """
    try:
        from hydra.core.config_store import ConfigStore
    except ImportError as err:
        _unavailable("ConfigStore shared by copies", err)
        return
    if "__deepcopy__" not in vars(ConfigStore):
        ConfigStore.__deepcopy__ = lambda self, memo: self


_ready_for_jobs = False


def before_jobs(wandb: bool) -> None:
    """Switch on, once per process, what a job needs before torch is imported (composing imports
    no torch, so these wait for the first job). ``wandb``: W&B is the logger."""
    global _ready_for_jobs
    if _ready_for_jobs:
        return
    _ready_for_jobs = True
    if wandb:
        preimport_wandb_launch_inputs()
    skip_unloadable_nvml_probe()


def exit_without_teardown(exit_status: Callable[[], int]) -> None:
    """Leave as soon as every other exit handler has run (W&B, loky, logging).

    The interpreter's teardown of torch, Lightning and the rest costs every run over a second
    (benchmarks/RESULTS.md), and a job has closed what it wrote by then. atexit runs last in,
    first out, so the entry point registers this before torch and W&B register theirs.
    """

    def leave() -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_status())

    atexit.register(leave)


WANDB_LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"


def preimport_wandb_launch_inputs() -> None:
    """Import the module every ``wandb.init`` imports before torch is: its pydantic models scan
    ``sys.modules`` as they load, slower once torch is in (benchmarks/RESULTS.md)."""
    try:
        importlib.import_module(WANDB_LAUNCH_INPUTS)
    except ImportError as err:
        _unavailable("W&B launch-inputs pre-import", err)


def skip_unloadable_nvml_probe() -> None:
    """Stop torch from trying to load NVML on every optimizer step where there is no NVML.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking for CUDA does not
    initialise it (forking would be ruled out). Every ``optimizer.step()`` asks, and without a
    driver torch fails to ``dlopen`` NVML each time before falling back to the CUDA runtime query:
    where NVML cannot load, ask for that directly.
    """
    import lightning  # noqa: F401 - sets the variable

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        _unavailable("NVML probe", RuntimeError("Lightning no longer sets "
                                                "PYTORCH_NVML_BASED_CUDA_CHECK=1"))
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


# --- called where they are needed -------------------------------------------------------------


def drop_wandb_anonymous_setting(logger: Any) -> None:
    """Lightning's WandbLogger always passes ``anonymous=None`` to ``wandb.init``, which this
    wandb warns about ("has no effect and will be removed") on every run."""
    try:
        logger._wandb_init.pop("anonymous", None)
    except AttributeError as err:
        _unavailable("WandbLogger anonymous setting", err)


def relaunches_command_line(strategy: Any) -> bool | None:
    """Whether ``strategy`` starts its extra processes by re-running the command line
    (Lightning's subprocess-script launcher, plain ``ddp``); None when that cannot be told."""
    try:
        from lightning.pytorch.strategies.launchers.subprocess_script import (
            _SubprocessScriptLauncher,
        )
    except ImportError as err:
        _unavailable("ddp relaunch check", err)
        return None
    return isinstance(getattr(strategy, "launcher", None), _SubprocessScriptLauncher)


def fork_joblib_workers() -> bool:
    """Make joblib's loky workers forks of this process rather than fresh interpreters
    (joblib has no public switch for it). Returns whether it was done."""
    try:
        from joblib.externals.loky.backend import context
    except ImportError as err:
        _unavailable("loky fork start method", err)
        return False
    context.set_start_method("fork", force=True)
    return True


def basic_sweep_jobs(overrides: list[str], config_loader: Any = None) -> list[list[str]] | None:
    """The jobs Hydra's basic sweeper makes of a multirun's overrides (no public API); None when
    it cannot. With the sweep's ``config_loader``, group globs (``downsample=glob(*)``) expand."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    except ImportError as err:
        _unavailable("Hydra's basic sweeper", err)
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        [jobs] = BasicSweeper.split_arguments(
            OverridesParser.create(config_loader=config_loader).parse_overrides(overrides), None
        )
    except HydraException:  # a sweep the basic sweeper cannot expand
        return None
    return jobs


def job_set_up(err: BaseException) -> Any:
    """The config of the job Hydra was setting up (its folder, its ``.hydra/``, its log) when
    ``err`` was raised: ``run_job``'s local ``config`` (no public API says); None elsewhere."""
    try:
        from hydra.core.utils import run_job
    except ImportError as import_err:
        _unavailable("the job Hydra sets up", import_err)
        return None
    found, frames = None, err.__traceback__
    while frames is not None:
        if frames.tb_frame.f_code is run_job.__code__:
            found = frames.tb_frame.f_locals.get("config")
        frames = frames.tb_next
    return found


def fft_flop_formulas() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for ``FlopCounterMode(custom_mapping=...)`` for the ATen ops that
    ``torch.fft`` calls (``_fft_c2c``, ``_fft_r2c``, ``_fft_c2r``: private), which it counts
    as 0; none where they have moved. 5·N·log2(N) real FLOPs per complex N-point FFT,
    2.5·N·log2(N) per real one (the radix-2 count)."""
    import torch

    def formula(per_point: float, on_output: bool) -> Callable[..., int]:
        def count(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
            signal = out_shape if on_output else x_shape  # the side the transform is n-point on
            points = math.prod(signal[d] for d in dim)  # per transform
            return int(per_point * math.prod(signal) * math.log2(points))
        return count

    try:
        aten = torch.ops.aten
        return {aten._fft_c2c: formula(5, on_output=False),
                aten._fft_r2c: formula(2.5, on_output=False),
                aten._fft_c2r: formula(2.5, on_output=True)}
    except (AttributeError, RuntimeError) as err:
        _unavailable("FFT FLOP formulas", err)
        return {}


def fractional_max_pool_fixed(x: Any, kernel_size: int, output_size: tuple[int, int],
                              sample: float) -> Any:
    """``F.fractional_max_pool2d`` with every region's draw fixed at ``sample`` (its private
    ``_random_samples``): deterministic regions, for evaluation. Where that has moved, the
    regions come from a generator seeded alike at every call: deterministic still."""
    import torch
    import torch.nn.functional as F

    samples = x.new_full((x.shape[0], x.shape[1], 2), sample)
    try:
        return F.fractional_max_pool2d(x, kernel_size, output_size=output_size,
                                       _random_samples=samples)
    except TypeError as err:
        _unavailable("fractional max pooling's fixed regions", err)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        return F.fractional_max_pool2d(x, kernel_size, output_size=output_size)
