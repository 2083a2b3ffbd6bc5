"""What the console shows: library noise that says nothing about this framework's runs is
filtered out (switched on by the entry points, never at import)."""

from __future__ import annotations

import logging
import warnings

_NOISE = (
    r".*does not have many workers.*",
    r".*is smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*The `srun` command is available on your system but is not used.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # a resumed job's own folder
)
# Lightning's lines about loading the selected checkpoint for the validation and test passes
# (four per job; a resumed job says "resuming from" itself), and its litlogger advert.
_QUIET_INFO = ("litlogger", "Restoring states from the checkpoint path",
               "Loaded model weights from the checkpoint")


def _not_quiet(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in _QUIET_INFO)


def quiet_library_noise() -> None:
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_quiet not in lightning_log.filters:
        lightning_log.addFilter(_not_quiet)
