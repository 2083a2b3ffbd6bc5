"""The command line: ``python -m downsample_study [-m] key=value ...`` (or ``downsample-study``).

``run`` is the app, usable in process (the tests call it); ``main`` adds the process-wide tweaks
and the exit. Composing imports no torch, so ``--help``, ``--cfg``, tab completion and a bad key
answer fast (benchmarks/RESULTS.md); a job's modules are imported when the first job starts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hydra
from omegaconf import DictConfig

from downsample_study import internals
from downsample_study.config.hydra_versions import main_options
from downsample_study.config.store import CONFIG_DIR
from downsample_study.console import SIDE_COMMANDS

log = logging.getLogger("downsample_study")

_exit_status = 1  # until run() returns


def _full_tracebacks() -> bool:
    """Whether the user asked for Hydra's full tracebacks: ``HYDRA_FULL_ERROR=1``, as in Hydra
    (any other value keeps the one-line errors)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


@contextlib.contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let Hydra's errors reach ``run`` rather than be printed and exited on, unless the user
    asked for Hydra's full tracebacks."""
    if _full_tracebacks():
        yield
        return
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved


def _submitit_message(err: BaseException) -> str | None:
    """One line for submitit's errors (``sbatch`` refusing the jobs, a job that returned
    nothing); None for others."""
    utils = sys.modules.get("submitit.core.utils")
    if utils is None or not isinstance(err, utils.UncompletedJobError):
        return None
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    cause = err.__cause__
    if isinstance(cause, subprocess.CalledProcessError) and Path(str(cause.cmd[0])).name == (
            "sbatch"):
        return (f"sbatch refused the sweep's jobs (exit status {cause.returncode}): "
                f"{' '.join(lines[-2:])}; check the cluster and hydra.launcher.* "
                f"(partition, account)")
    return (f"a job did not finish under submitit (killed, or out of time): "
            f"{' '.join(lines[:2])}; its logs are beside that file")


def _storage_failure(err: OSError) -> int:
    """One line naming the folder Hydra was setting up; a multirun stopped so (a job's
    folder on a full disk) still ends with its summary."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from downsample_study.storage import storage_error

    job = internals.job_set_up(err)
    within = OmegaConf.select(job, "hydra.runtime.output_dir") if job is not None else None
    print(f"error: {storage_error(err, within=within)}", file=sys.stderr)
    if job is not None and OmegaConf.select(job, "hydra.mode") == RunMode.MULTIRUN:
        from downsample_study.sweeps.summary import summarize

        summarize(Path(job.hydra.sweep.dir))
    return 1


def _printed_package(argv: list[str]) -> str | None:
    """The node ``--cfg job`` (or ``all``) prints the job's config at: ``_global_`` for the
    whole of it, else ``--package``'s; None when it prints none (Hydra's flags, parsed as
    Hydra parses them)."""
    flags = argparse.ArgumentParser(add_help=False)
    for names in (("--cfg", "-c"), ("--package", "-p"), ("--config-path", "-cp"),
                  ("--config-name", "-cn"), ("--config-dir", "-cd")):  # -cn is not -c n
        flags.add_argument(*names)
    printed, _ = flags.parse_known_args(argv)
    return (printed.package or "_global_") if printed.cfg in ("job", "all") else None


def _without_unset_trainer_keys(printed: str, package: str) -> str:
    """The config Hydra printed less the ``trainer`` keys left null, Lightning's defaults (the
    schema has a key for each of its ~50 arguments, so that any is typed on the command line)."""
    inside, kept = package == "trainer", []
    for line in printed.splitlines(keepends=True):
        if package != "trainer" and not line.startswith(" "):
            inside = package == "_global_" and line.rstrip() == "trainer:"
        indent = "" if package == "trainer" else "  "
        if not (inside and re.fullmatch(rf"{indent}\w+: null\n?", line)):
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _trainer_keys_set_only(argv: list[str]) -> Iterator[None]:
    """What ``--cfg job`` or ``--cfg all`` prints, shown without the unset Trainer keys."""
    if (package := _printed_package(argv)) not in ("_global_", "trainer"):
        yield
        return
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        sys.stdout.write(_without_unset_trainer_keys(printed.getvalue(), package))


def _side_command(name: str, argv: list[str], prog: str) -> int:
    """``downsample-study NAME ARGS``: the side command ``NAME`` (``console.SIDE_COMMANDS``)."""
    import importlib

    shown = "python -m downsample_study" if prog == "downsample_study" else prog
    try:
        return importlib.import_module(SIDE_COMMANDS[name][0]).main(argv, prog=f"{shown} {name}")
    except SystemExit as exit_:  # its --help, or arguments it refuses (exit 2)
        return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1


def run(argv: list[str], prog: str = "downsample_study") -> int:
    """Run the app on ``argv`` (without the program name) as ``prog`` (the name Hydra's shell
    completion is installed for); return the exit status. A side command's name first runs it,
    before Hydra parses anything: an override is never a bare word."""
    if argv and argv[0] in SIDE_COMMANDS:
        return _side_command(argv[0], argv[1:], prog)
    from downsample_study.config.messages import composition_message
    from downsample_study.config.store import register_configs
    from downsample_study.console import quiet_library_noise
    from downsample_study.errors import Interrupted, StorageError, UserError
    from downsample_study.runtime.signals import STOPS
    from downsample_study.storage import is_storage_error
    from downsample_study.sweeps.launchers import register_resolvers

    quiet_library_noise()
    internals.share_config_store_in_copies()
    register_configs()
    register_resolvers()
    saved, sys.argv = sys.argv, [prog, *argv]
    try:
        with _hydra_raises(), STOPS.handling(), _trainer_keys_set_only(argv):
            hydra_app()
    except SystemExit as exit_:
        code = exit_.code
        return 0 if code is None else code if isinstance(code, int) else 1
    except Interrupted as stop:  # outside any job: while composing or between jobs
        print(f"stopped by {stop.name}", file=sys.stderr)
        return stop.exit_status
    except (StorageError, UserError) as err:  # outside any job (a sweeper's setting, say)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if (message := _submitit_message(err)) is not None:
            print(f"error: {message}", file=sys.stderr)
            return 1
        if is_storage_error(err):  # Hydra creating a run's, a sweep's or a job's folder
            return _storage_failure(err)
        message = composition_message(err, argv)
        if message is None or _full_tracebacks():
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", **main_options())
def hydra_app(cfg: DictConfig) -> float | None:
    from downsample_study.console import route_library_logs

    route_library_logs()  # Hydra configured logging: Lightning's lines through its handlers
    internals.before_jobs(wandb="wandb" in cfg.logger)
    from downsample_study.task import run_task

    return run_task(cfg)


def main() -> None:
    global _exit_status
    internals.exit_without_teardown(lambda: _exit_status)
    prog = Path(sys.argv[0]).name  # downsample-study (the script), or python -m's __main__.py
    try:
        _exit_status = run(sys.argv[1:], "downsample_study" if prog == "__main__.py" else prog)
    except KeyboardInterrupt:
        _exit_status = 130
        raise
    sys.exit(_exit_status)
