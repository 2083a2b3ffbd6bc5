"""The framework's error types: the ground floor, importing nothing of the project.

A ``UserError`` is the user's input's fault: the command line reports it in one line, never as
a traceback, and exits non-zero.
"""

from __future__ import annotations

import difflib
import os
import signal
from pathlib import Path

MAX_LISTED = 12  # longer lists (the Trainer's ~50 arguments) are cut, with a pointer


def no_such_key(key: str, keys: list[str], parent: str = "") -> str:
    """``key`` is none of ``keys``, those of its node ``parent``: the closest, and the list."""
    close = difflib.get_close_matches(key.rpartition(".")[2], keys, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    listed = ", ".join(keys[:MAX_LISTED]) + (
        f" and {len(keys) - MAX_LISTED} more (--cfg job shows them)"
        if len(keys) > MAX_LISTED else "")
    where = parent or "the top level"
    return (f"{key}: no such key{hint}; keys of {where}: {listed}" if keys else
            f"{key}: no such key; {where} has no keys")


def not_a_folder(path: str | Path) -> str:
    """Why ``path``, asked for as a folder, is not one: missing, or a file."""
    return "a file, not a folder" if Path(path).exists() else "no such folder"


def path_of(value: object, what: str) -> Path:
    """``value`` as a path; a ``ResultsError`` saying what to pass when it is not one."""
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ResultsError(f"expected the path of {what} (a str or Path), got {value!r} "
                           f"({type(value).__name__})")
    return Path(value)


def first_line(err: BaseException) -> str:
    """An exception's message in one line: its first, or its type's name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class UserError(Exception):
    """An error caused by the user's input: reported as a one-line message, never a traceback."""


class ConfigError(UserError):
    """A configuration value is wrong: the message names the key and what is allowed."""


class DataError(UserError):
    """The dataset's files are missing or unusable; the message names the expected paths."""


class ShapeError(UserError):
    """The feature map collapses (or a layer rejects its input) at a named layer."""


class DivergedError(UserError):
    """The training loss became NaN or infinite."""


class StorageError(UserError):
    """A file or folder cannot be written (full disk, no permission): the message names it."""


class JobBusy(UserError):
    """Another process is running the same job (its folder is locked)."""


class OtherJobError(UserError):
    """Its folder records another configuration's run: not this job's to skip, resume or replace."""


class ResultsError(UserError):
    """A job's record (its ``results.json``, its ``epochs.csv``) cannot be read as one."""


class NewerResultsError(ResultsError):
    """A ``results.json`` of a newer schema version than this version reads."""


class ReportError(UserError):
    """Nothing to report on: the message says why."""


class Interrupted(BaseException):
    """The job was asked to stop (SIGTERM: kill, timeout, scancel, preemption; SIGINT: Ctrl-C).

    A ``BaseException`` so that no ``except Exception`` swallows it. ``immediate``: a second
    signal, raised wherever the job was, so no checkpoint of that moment is saved.
    """

    def __init__(self, signum: int, immediate: bool = False):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.immediate = signum, immediate

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal
