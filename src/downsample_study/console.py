"""What the console shows: library noise filtered out, counts in English, the side commands.

The noise filters are switched on by the entry points, never at import."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from downsample_study.errors import StorageError, UserError

_log = logging.getLogger("downsample_study")

_NOISE = (
    r".*does not have many workers.*",
    r".*is smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*The `srun` command is available on your system but is not used.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # a resumed job's own folder
    r".*Experiment logs directory .* exists and is not empty.*",  # a resumed job's CSV log
    r".*AMP with fp16 is not supported on CPU.*",  # the job says it in a line of its own
)
# Lightning's lines on loading the selected checkpoint (four per job; a resumed job says so
# itself), its litlogger advert and its SIGTERM note (the framework says what it does about it)
_QUIET_INFO = ("litlogger", "Restoring states from the checkpoint path",
               "Loaded model weights from the checkpoint", "Received SIGTERM")
_QUIETED_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                    "lightning.pytorch.trainer.connectors.signal_connector")


@contextlib.contextmanager
def native_lines_quieted():
    """Send file descriptor 2 to /dev/null for the block: what C++ libraries print there
    (torch's profiler: ``profiler_start``, ``gpuGetDeviceCount failed`` on a CPU) no Python
    setting quiets. Keep the block short: Python's own stderr goes there too."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 job``, ``2 jobs``: ``noun`` + s (or ``plural``) unless ``n`` is one."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _not_quiet(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in _QUIET_INFO)


def quiet_library_noise() -> None:
    # a log file on a full disk costs its lines, not a traceback on the console for each
    logging.raiseExceptions = False
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)
    for name in _QUIETED_LOGGERS:
        lightning_log = logging.getLogger(name)
        if _not_quiet not in lightning_log.filters:
            lightning_log.addFilter(_not_quiet)


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's info lines and noise off for a while: ``Run.evaluate`` prints only its result."""
    import lightning.pytorch  # noqa: F401 - its import sets its logger's level

    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in _NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        lightning_log.setLevel(level)


# downsample-study NAME ... (or downsample-study-NAME): each one's module (its ``main``) and what
# it does, as --help says it
SIDE_COMMANDS = {
    "report": ("downsample_study.report.cli",
               "a sweep's report into its folder: verdicts, tables (report.md, CSV) and plots"),
    "progress": ("downsample_study.sweeps.progress",
                 "how far a sweep has got, and about how long the rest will take"),
    "record": ("downsample_study.sweeps.record",
               "a sweep's record (results, configs, no checkpoints) copied into another folder"),
}


def command_name(module: str) -> str:
    """The name a side command was started by, for its usage line: its script's
    (``downsample-study-report``), else ``python -m module``."""
    script = Path(sys.argv[0]).name
    return script if script.startswith("downsample-study-") else f"python -m {module}"


class SideParser(argparse.ArgumentParser):
    """A side command's arguments: a wrong one is one line, the error and the usage, exit 2."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()[1:])  # on one line, without "usage:"
        self.exit(2, f"error: {message}; usage: {usage}\n")


def side_command(body: Callable[[], int | None], stopped: str) -> int:
    """Run a side command (report, record, progress): a ``UserError`` is one line on stderr and
    exit 2 (1 for a ``StorageError``, the disk's fault); Ctrl-C is 130, saying ``stopped``."""
    try:
        return body() or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1 if isinstance(err, StorageError) else 2
    except KeyboardInterrupt:
        print(f"stopped: {stopped}", file=sys.stderr)
        return 130


LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def route_library_logs() -> None:
    """Lightning's lines through the job's own handlers (console, log file), once each: imported
    after logging is configured, Lightning keeps its own console handler and every line showed
    twice. Where nothing configured logging (a notebook), Lightning's handlers stay."""
    import lightning.pytorch  # noqa: F401 - its import sets up its loggers

    if not logging.getLogger().handlers:
        return
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler):
                library.removeHandler(handler)
        library.propagate = True


def say(message: str) -> None:
    """A line for the user, on the console and in the job's log file; from the main process."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        _log.info(message)
