"""Stopping a job cleanly on SIGTERM, SIGINT or SIGHUP: at its next training step
(``stops.py``), or at once outside training or on a second signal."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from downsample_study.errors import Interrupted
from downsample_study.layout import STOPPED_FILE
from downsample_study.storage import alive

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
HANG_UP = signal.SIGHUP  # handled as those where it would end the process: not under nohup
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # a launcher's handler there requeues the job


SWEEP_ID = "DOWNSAMPLE_STUDY_SWEEP"  # the environment's: this run of a sweep, its workers too


def start_sweep() -> None:
    """A run of a sweep starts in this process: an id of its own, which its workers inherit,
    so a stop marks it alone (another sweep into the same folder goes on)."""
    os.environ[SWEEP_ID] = f"{os.getpid()}-{secrets.token_hex(4)}"


def _mark(sweep_dir: Path, sweep: str | None = None) -> Path:
    return Path(sweep_dir) / f"{STOPPED_FILE}-{sweep or os.environ.get(SWEEP_ID, '')}"


def sweep_stopped(sweep_dir: Path) -> int | None:
    """The signal that stopped this run of the sweep in ``sweep_dir``, if one did."""
    with contextlib.suppress(OSError, KeyError):
        return signal.Signals[_mark(sweep_dir).read_text().strip()].value
    return None


def clear_sweep_stopped(sweep_dir: Path) -> None:
    """Remove the stop marks of the runs of sweeps whose process is gone."""
    for mark in Path(sweep_dir).glob(f"{STOPPED_FILE}-*"):
        pid = mark.name.removeprefix(f"{STOPPED_FILE}-").split("-")[0]
        if pid.isdigit() and not alive(int(pid)):
            with contextlib.suppress(OSError):
                mark.unlink()


def mark_sweep_stopped(sweep_dir: Path, signum: int) -> None:
    with contextlib.suppress(OSError):  # a full disk: the sweep's process still knows
        _mark(sweep_dir).write_text(signal.Signals(signum).name + "\n")


class StopRequests:
    """The process's stop requests: which signal came first, and whether a fit is running
    (then the stop waits for the next step boundary)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_fit = False
        self.running_job = False  # this process is running a job
        self.sweep_dir: Path | None = None  # this process belongs to a multirun
        self.requeued = False  # the launcher's requeue handler ran: the task exits to run again

    def _handle(self, signum: int, frame) -> None:
        if self.requeued:
            log.info("%s received while the job is requeued: it resumes on its next start",
                     signal.Signals(signum).name)
            return
        first = self.signum is None
        self.signum = self.signum or signum
        if not self.running_job and self.sweep_dir is not None:
            if first:
                log.warning("%s received: stopping the sweep (running jobs stop at their next "
                            "step; no new job starts)", signal.Signals(signum).name)
            mark_sweep_stopped(self.sweep_dir, self.signum)
            return
        if not first:
            raise Interrupted(signum, immediate=True)
        if self.in_fit:
            log.warning("%s received: stopping after this training step with a checkpoint "
                        "(send it again to stop at once)", signal.Signals(signum).name)
        else:
            raise Interrupted(signum)

    def _requeue_handler(self, handler):
        def requeue(signum: int, frame) -> None:
            self.requeued = True
            handler(signum, frame)
        return requeue

    def _handling(self) -> bool:
        return all(signal.getsignal(s) == self._handle for s in SIGNALS)

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Handle SIGTERM, SIGINT and SIGHUP inside the block; a no-op off the main thread or
        where they are handled already (e.g. a worker forked from such a process)."""
        if self._handling() or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (*SIGNALS, HANG_UP, *REQUEUE_SIGNALS)}
        self.signum, self.in_fit, self.running_job, self.sweep_dir = None, False, False, None
        self.requeued = False
        for s in SIGNALS:
            signal.signal(s, self._handle)
        if previous[HANG_UP] == signal.SIG_DFL:
            signal.signal(HANG_UP, self._handle)
        for s in REQUEUE_SIGNALS:
            if callable(previous[s]):
                signal.signal(s, self._requeue_handler(previous[s]))
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def check(self) -> None:
        """Raise ``Interrupted`` if a stop was requested."""
        if self.signum is not None:
            raise Interrupted(self.signum)


STOPS = StopRequests()
