"""One process at a time per job folder: a job holds its folder's ``fcntl.flock`` lock
(released by the OS if the process dies), so two sweeps into one folder never train a job
twice."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from downsample_study import internals
from downsample_study.errors import ConfigError, JobBusy
from downsample_study.layout import LOCK_FILE
from downsample_study.runtime.signals import STOPS
from downsample_study.storage import storage_error

WAIT_POLL_S = 2.0

log = logging.getLogger("downsample_study")


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text().strip() or "?"
    return "?"


def is_primary() -> bool:
    """Whether this is the job's rank 0, the one process that takes the lock and names the run."""
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0


@contextlib.contextmanager
def job_lock(output_dir: Path) -> Iterator[None]:
    """Hold the lock of the job in ``output_dir`` for the block; ``JobBusy`` if another
    process holds it. The job's other processes (ranks 1, 2, ...) run under rank 0's lock."""
    if not is_primary():
        yield
        return
    path = Path(output_dir) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held open while the job runs
    except OSError as err:
        raise storage_error(err, path) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise JobBusy(f"{output_dir}: another process (pid {_holder(path)}) is running this "
                      f"job") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def running_elsewhere(output_dir: Path) -> bool:
    """Whether another process holds the lock of the job in ``output_dir`` right now."""
    path = Path(output_dir) / LOCK_FILE
    if not path.is_file():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def wait_for_others(folders: Sequence[Path]) -> None:
    """Return when no other process runs the job of any of ``folders`` (saying which it
    waits for): a job skipped because another sweep runs it has its outcome only then."""
    busy = [f for f in folders if running_elsewhere(f)]
    if busy:
        log.info("waiting for %d job(s) that another process is running: %s", len(busy),
                 ", ".join(f.name for f in busy[:3]) + (" ..." if len(busy) > 3 else ""))
    while busy and STOPS.signum is None:  # a stop ends the wait
        time.sleep(WAIT_POLL_S)
        busy = [f for f in busy if running_elsewhere(f)]


def refuse_script_relaunch(trainer: Any) -> None:
    """Stop a multirun job whose strategy would start its extra processes by re-running the
    command line (``ddp``): each of them would run the whole sweep again."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    launcher = getattr(trainer.strategy, "launcher", None)
    if (
        HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
        and internals.relaunches_command_line(trainer.strategy)
        and launcher.num_processes > 1
        and not trainer.strategy.cluster_environment.creates_processes_externally
    ):
        raise ConfigError(
            f"trainer.strategy: {type(trainer.strategy).__name__} starts its "
            f"{launcher.num_processes} processes by re-running the command line, which in a "
            f"multirun re-runs the whole sweep; use accelerator=ddp (ddp_spawn), or SLURM with "
            f"one task per device (hydra/launcher=slurm)"
        )
