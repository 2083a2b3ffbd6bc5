"""Per-job resources when a sweep runs jobs side by side: each holds a *slot* (a lock file in
the sweep folder) giving it a GPU index and its share of the cores. By index, because workers
that imported torch already cannot be steered by ``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch.callbacks import Callback

from downsample_study.errors import ConfigError
from downsample_study.layout import CLAIM_FILE, SLOT_FILE, SLOTS_DIR

GPU_ACCELERATORS = ("auto", "gpu", "cuda")


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: int | None  # index among the visible GPUs, None on CPU
    threads: int
    lock_dir: Path | None = None  # where the sweep's slots are (None: not shared)
    n_slots: int = 1

    def trainer_settings(self, trainer: dict[str, Any]) -> dict[str, Any]:
        """The ``trainer.*`` values that pin the job to the slot's GPU (none on CPU); a
        ``ConfigError`` for a job of several devices, which a slot cannot hold."""
        devices = trainer.get("devices")
        if devices not in (None, 1, "1", "auto"):
            raise ConfigError(
                f"trainer.devices: hydra/launcher=parallel runs one single-device job per slot, "
                f"got devices={devices}; run multi-device jobs with the default launcher or on "
                f"SLURM")
        return {} if self.gpu is None else {"accelerator": "gpu", "devices": [self.gpu]}

    def fair_threads(self) -> int:
        """This job's share of the cores among the slots held right now."""
        busy = busy_slots(self.lock_dir, self.n_slots) if self.lock_dir else 1
        return max(1, available_cores() // max(1, busy))


def available_cores() -> int:
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    with open(lock_dir / CLAIM_FILE, "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def _free_slots(lock_dir: Path, n_slots: int) -> dict[int, IO]:
    """The slots no job holds, each now locked by the caller (index → lock handle)."""
    return {i: h for i in range(n_slots) if (h := _try_lock(lock_dir / SLOT_FILE.format(i)))}


def busy_slots(lock_dir: Path, n_slots: int) -> int:
    """How many slots jobs hold right now (this job's own included)."""
    with _claims_paused(lock_dir):
        free = _free_slots(lock_dir, n_slots)
        for handle in free.values():
            handle.close()
    return n_slots - len(free)


class ShareIdleCores(Callback):
    """Give a job the cores of slots gone idle (a sweep's last jobs), and give them back. More
    threads only when two checks in a row agree (a freed slot is usually claimed again within
    a second), fewer at once."""

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
    """Hold a free slot for the ``with`` block, one on the GPU running the fewest jobs (slot
    ``i`` uses GPU ``i % n_gpus``); waits while all are taken (another sweep in the folder)."""
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
def job_slot(trainer: Any, n_slots: int, sweep_dir: Path) -> Iterator[Slot | None]:
    """This job's slot while it runs, its threads its share of the cores (None when jobs run
    one at a time); ``trainer``: its ``trainer.*``."""
    if n_slots <= 1:
        yield None
        return
    n_gpus = torch.cuda.device_count() if uses_gpu(trainer) else 0
    with claim_slot(sweep_dir / SLOTS_DIR, n_slots, n_gpus) as slot:
        torch.set_num_threads(slot.threads)
        yield slot


def uses_gpu(trainer: Any) -> bool:
    accelerator = str(trainer.get("accelerator") or "auto")
    return accelerator in GPU_ACCELERATORS and torch.cuda.is_available()
