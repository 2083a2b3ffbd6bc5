"""The command line: ``python -m downsample_study [-m] key=value ...`` (or ``downsample-study``).

``run`` is the app, usable in process (the tests call it); ``main`` adds the process-wide tweaks
and the exit. Composing imports no torch, so ``--help``, ``--cfg``, tab completion and a bad key
answer fast (benchmarks/RESULTS.md); a job's modules are imported when the first job starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hydra
from omegaconf import DictConfig

from downsample_study import internals
from downsample_study.config.store import CONFIG_DIR
from downsample_study.errors import first_line

log = logging.getLogger("downsample_study")

_exit_status = 1  # until run() returns


@contextlib.contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let Hydra's errors reach ``run`` rather than be printed and exited on, unless the user
    asked for Hydra's full tracebacks (HYDRA_FULL_ERROR=1)."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


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


def _study_message(err: BaseException) -> str | None:
    """One line for ``hydra/sweeper=lr_search`` ending with no completed trial (Optuna is asked
    for a best trial there is none of) or a storage Optuna cannot open; None for others."""
    if "optuna" not in sys.modules:
        return None
    if isinstance(err, ValueError) and "No trials are completed yet" in str(err):
        return ("hydra/sweeper=lr_search: none of the study's trials completed, so it has no "
                "best rate; each trial's error is above, and in its results.json")
    if type(err).__module__.startswith("sqlalchemy"):
        reason = first_line(err)
        return (f"hydra.sweeper.storage: Optuna cannot open it ({reason}); expected a database "
                f"URL such as sqlite:///path/study.db in a folder that exists, or null (in "
                f"memory)")
    return None


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


def run(argv: list[str], prog: str = "downsample_study") -> int:
    """Run the app on ``argv`` (without the program name) as ``prog`` (the name Hydra's shell
    completion is installed for); return the exit status."""
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
        with _hydra_raises(), STOPS.handling():
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
        if (message := _submitit_message(err) or _study_message(err)) is not None:
            print(f"error: {message}", file=sys.stderr)
            return 1
        if is_storage_error(err):  # Hydra creating a run's, a sweep's or a job's folder
            return _storage_failure(err)
        message = composition_message(err)
        if message is None or os.environ.get("HYDRA_FULL_ERROR"):
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def hydra_app(cfg: DictConfig) -> float | None:
    from downsample_study.console import route_library_logs

    route_library_logs()  # Hydra configured logging: Lightning's lines through its handlers
    internals.before_jobs(wandb=cfg.logger.name == "wandb")
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
