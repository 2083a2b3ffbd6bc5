"""The framework's error types: the ground floor, importing nothing of the project.

A ``UserError`` is caused by the user's input (a config value, a data file, a shape that
collapses, a run that diverges): the command line reports it in one line, never as a
traceback, and exits non-zero.
"""

from __future__ import annotations


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


class ResultsError(UserError):
    """A ``results.json`` cannot be read as the results of a job."""


class ReportError(UserError):
    """Nothing to report on: the message says why."""
