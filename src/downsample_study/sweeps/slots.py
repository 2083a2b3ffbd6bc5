"""Per-job resources when a sweep runs several jobs at once on one machine.

With ``hydra/launcher=parallel`` joblib runs ``n_jobs`` jobs at a time in reused worker
processes that have already imported torch, so setting ``CUDA_VISIBLE_DEVICES`` there would
change nothing. Each job instead claims a *slot*: a lock file in the sweep folder, held with
``fcntl.flock`` while the job runs and released by the OS if its process dies. The slot gives
the job a GPU index for Lightning (``trainer.devices=[i]``) and its share of the CPU cores as
torch threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, open_dict

from downsample_study import internals
from downsample_study.errors import ConfigError

SLOTS_DIR = ".slots"
GPU_ACCELERATORS = ("auto", "gpu", "cuda")


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: int | None  # index among the visible GPUs, None on CPU
    threads: int
    lock_dir: Path | None = None  # where the sweep's slots are (None: not shared)
    n_slots: int = 1

    def fair_threads(self) -> int:
        """This job's share of the cores among the slots held right now."""
        busy = busy_slots(self.lock_dir, self.n_slots) if self.lock_dir else 1
        return max(1, available_cores() // max(1, busy))


def available_cores() -> int:
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_parallel_jobs(jobs_per_gpu: int) -> int:
    """``n_jobs`` of the parallel preset: every GPU ``jobs_per_gpu`` times, else every core."""
    if jobs_per_gpu < 1:
        raise ConfigError(f"parallel.jobs_per_gpu: must be >= 1, got {jobs_per_gpu}")
    gpus = torch.cuda.device_count()
    return gpus * jobs_per_gpu if gpus else available_cores()


def fork_workers() -> bool:
    """Make joblib's loky workers forks of this process rather than fresh interpreters.

    A fresh worker spends ~5 s importing torch and Lightning before its first job, which on
    short jobs eats the gain of running them side by side; a fork inherits them already
    imported. Done only where forking is safe: on Linux, and while this process has not
    initialised CUDA (a forked child could not use it). Returns whether it was done.
    """
    if sys.platform != "linux" or torch.cuda.is_initialized():
        return False
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


def _try_lock(path: Path) -> IO | None:
    handle = open(path, "a")  # noqa: SIM115 - held open while the job runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def _claims_paused(lock_dir: Path) -> Iterator[None]:
    """Hold the sweep's claim lock: one claim (or count) at a time, so loads are up to date."""
    with open(lock_dir / "claim.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def _free_slots(lock_dir: Path, n_slots: int) -> dict[int, IO]:
    """The slots no job holds, each now locked by the caller (index → lock handle)."""
    return {i: h for i in range(n_slots) if (h := _try_lock(lock_dir / f"slot-{i}"))}


def busy_slots(lock_dir: Path, n_slots: int) -> int:
    """How many slots jobs hold right now (this job's own included)."""
    with _claims_paused(lock_dir):
        free = _free_slots(lock_dir, n_slots)
        for handle in free.values():
            handle.close()
    return n_slots - len(free)


class ShareIdleCores(Callback):
    """Give a job the cores of slots that have gone idle, and give them back.

    The last jobs of a sweep otherwise train on their one share of the cores while the other
    shares idle. Checked every ``every_n_steps`` training steps and before each validation
    and test pass; more threads are taken only when two checks in a row agree (a freed slot
    is usually claimed again by the sweep's next job within a second), fewer at once.
    """

    def __init__(self, slot: Slot, every_n_steps: int = 50):
        self.slot, self.every_n_steps, self._offered = slot, every_n_steps, 0

    def rebalance(self) -> None:
        fair, current = self.slot.fair_threads(), torch.get_num_threads()
        if fair < current or (fair > current and self._offered == fair):
            torch.set_num_threads(fair)
        self._offered = fair

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if batch_idx % self.every_n_steps == 0:
            self.rebalance()

    def on_validation_start(self, trainer, module) -> None:
        self.rebalance()

    def on_test_start(self, trainer, module) -> None:
        self.rebalance()


@contextlib.contextmanager
def claim_slot(lock_dir: Path, n_slots: int, n_gpus: int, poll_s: float = 1.0) -> Iterator[Slot]:
    """Hold a free slot for the duration of the ``with`` block.

    Slot ``i`` uses GPU ``i % n_gpus``; among the free slots the job takes one on the GPU
    that runs the fewest jobs, so no GPU gets a second job while another is idle. Waits when
    every slot is taken (another sweep writing into the same folder).
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    with _claims_paused(lock_dir):
        while True:
            free = _free_slots(lock_dir, n_slots)
            if free:
                break
            time.sleep(poll_s)
        busy = Counter(i % n_gpus for i in range(n_slots) if i not in free) if n_gpus else {}
        index = min(free, key=lambda i: (busy.get(i % n_gpus, 0) if n_gpus else 0, i))
        for i, handle in free.items():
            if i != index:
                handle.close()
    try:
        yield Slot(index, index % n_gpus if n_gpus else None,
                   max(1, available_cores() // n_slots), lock_dir, n_slots)
    finally:
        free[index].close()


@contextlib.contextmanager
def job_slot(cfg: DictConfig, n_slots: int, sweep_dir: Path) -> Iterator[Slot | None]:
    """This job's slot while it runs (None when jobs run one at a time)."""
    if n_slots <= 1:
        yield None
        return
    n_gpus = torch.cuda.device_count() if uses_gpu(cfg.trainer) else 0
    with claim_slot(sweep_dir / SLOTS_DIR, n_slots, n_gpus) as slot:
        apply_slot(cfg, slot)
        yield slot


def uses_gpu(trainer: DictConfig) -> bool:
    return str(trainer.get("accelerator") or "auto") in GPU_ACCELERATORS and (
        torch.cuda.is_available()
    )


def apply_slot(cfg: DictConfig, slot: Slot) -> None:
    """Point this job's Trainer at the slot's GPU and limit its CPU threads."""
    devices = cfg.trainer.get("devices")
    if devices not in (None, 1, "1", "auto"):
        raise ConfigError(
            f"trainer.devices: hydra/launcher=parallel runs one single-device job per slot, got "
            f"devices={devices}; run multi-device jobs with the default launcher or on SLURM"
        )
    if slot.gpu is not None:
        with open_dict(cfg.trainer):
            cfg.trainer.accelerator = "gpu"
            cfg.trainer.devices = [slot.gpu]
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(slot.threads)
    torch.set_num_threads(slot.threads)
