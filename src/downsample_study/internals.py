"""Every use of a library's private internals, in one module.

Each is a speed-up, a quieter console or a safety check that the framework can do without.
Each is guarded: if the internal it relies on has moved (after an upgrade), it says so once
at debug level and the run goes on without it; ``tests/test_internals.py`` has a test per
touch that fails when it no longer applies to the installed version, so the upgrade is
noticed. Process-wide ones are switched on by the entry point (``cli.main`` via ``enable``,
``cli.run``) and before the first job (``before_jobs``), never at import. How each gain was
measured: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import logging
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


def enable(exit_status: Callable[[], int]) -> None:
    """Switch on the process-wide ones the entry point needs before anything else runs:
    ``exit_status()`` is the status to exit with. The exit handler goes first, before any
    library registers its own."""
    exit_without_teardown(exit_status)


def share_config_store_in_copies() -> None:
    """Let Hydra's copies of its config repository share the one ConfigStore.

    Hydra 1.3 deep-copies its config repository each time it lists a group's options or
    loads a job's config (about a hundred times for ``--help``, once per job of a sweep), and
    the copy takes the whole ConfigStore with it, every schema node. The copy is there to
    keep the repository's list of sources apart; the store it copies is the process's
    singleton, read only. Hydra's main branch fetches the singleton instead of storing it
    (facebookresearch/hydra#2928, unreleased in 1.3.x); this does what that does, by copying
    the store as itself.
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
    """Switch on, once per process, the ones a job needs before torch is imported: composing
    a config (``--help``, ``--cfg``, tab completion, a bad key) imports no torch, so they wait
    for the first job, or the sweep that forks its workers. ``wandb``: W&B is the logger."""
    global _ready_for_jobs
    if _ready_for_jobs:
        return
    _ready_for_jobs = True
    if wandb:
        preimport_wandb_launch_inputs()
    skip_unloadable_nvml_probe()


def exit_without_teardown(exit_status: Callable[[], int]) -> None:
    """Leave as soon as every other exit handler has run (W&B, loky, logging).

    The interpreter's own teardown of torch, Lightning, matplotlib and the rest takes 1.0-1.4 s
    of every run; everything a job writes is closed by then. atexit runs its handlers last in,
    first out, so this one must be registered before torch and W&B register theirs: the entry
    point calls it first. (``os._exit`` is public; relying on what is left to the interpreter's
    teardown is the internal part.)
    """

    def leave() -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_status())

    atexit.register(leave)


WANDB_LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"


def preimport_wandb_launch_inputs() -> None:
    """Import the module every ``wandb.init`` imports (to apply W&B Launch job inputs) before
    torch is: its pydantic models scan ``sys.modules`` as they load, which costs about 0.5 s
    more once torch, Lightning and the rest are imported."""
    try:
        importlib.import_module(WANDB_LAUNCH_INPUTS)
    except ImportError as err:
        _unavailable("W&B launch-inputs pre-import", err)


def skip_unloadable_nvml_probe() -> None:
    """Stop torch from trying to load NVML on every optimizer step where there is no NVML.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` on import so that asking whether CUDA
    is available does not initialise it (which would rule out forking). Every
    ``optimizer.step()`` asks; without an NVIDIA driver torch then tries to ``dlopen``
    ``libnvidia-ml.so.1`` each time, fails, and falls back to the CUDA runtime query anyway.
    Where NVML cannot be loaded that fallback is the only answer, so ask for it directly; with
    a driver the NVML check stays.
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
    """The jobs Hydra's basic sweeper makes of a multirun's overrides, as it expands them
    (its expansion has no public API); None when it cannot be used or cannot expand them.
    With the sweep's ``config_loader``, group globs (``downsample=glob(*)``) expand too."""
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
