"""What a job's folder holds, by name (each file's writer documents it):

- ``results.json``: the outcome (``results.py``); ``epochs.csv``: one row per epoch;
- ``checkpoints/``: ``last.ckpt`` (every epoch, and where a stopped job stopped) and
  ``best-epoch<N>.ckpt`` (the selected one); ``*.broken``: set aside, they did not load;
- ``feature_maps.png``; ``downsample_study.log``; ``.hydra/``: the composed config;
- ``.lock``: held by the process running the job; ``.run_id``: its tracker run id;
- ``wandb/``, ``wandb-superseded/`` (earlier attempts), ``csv/``, ``tensorboard/``.
"""

from __future__ import annotations

import hashlib

CHECKPOINTS = "checkpoints"
EPOCHS_FILE = "epochs.csv"
LAST = "last.ckpt"
MAX_DIR_NAME = 150


def shorten(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters, kept unique with a hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def job_dir_name(override_dirname: str) -> str:
    """A job's folder inside a sweep: its overrides, so a re-run maps to the same folder.

    Long names are cut and made unique with a hash of the whole (file names stop at 255).
    """
    return shorten(override_dirname.replace("/", "_") or "default", MAX_DIR_NAME)
