"""Names a job gets in a sweep: its folder, its W&B group (the sweep) and job type (the
variant, i.e. its overrides without the seed)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

MAX_DIR_NAME = 150
# W&B limits a group to 128 characters and a job type to 64.
MAX_GROUP, MAX_JOB_TYPE = 128, 64


def _shorten(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters, kept unique with a hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def job_dir_name(override_dirname: str) -> str:
    """A job's folder inside a sweep: its overrides, so a re-run maps to the same folder.

    Long names are cut and made unique with a hash of the whole (file names stop at 255).
    """
    return _shorten(override_dirname.replace("/", "_") or "default", MAX_DIR_NAME)


def sweep_id(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep's jobs: its folder, relative to the working directory."""
    path = Path(sweep_dir).absolute()
    with contextlib.suppress(ValueError):  # outside the working directory: keep it whole
        path = path.relative_to(Path.cwd())
    return _shorten(path.as_posix().replace("/", "_").strip("_."), MAX_GROUP)


def variant_name(task_overrides: list[str], exclude_keys: list[str]) -> str:
    """A job's overrides without its seed: the W&B job type, shared by the seeds of a variant."""
    overrides = OverridesParser.create().parse_overrides(list(task_overrides))
    lines = sorted(
        o.input_line for o in overrides if o.key_or_group not in {*exclude_keys, "seed"}
    )
    return _shorten(",".join(lines) or "default", MAX_JOB_TYPE)


def override_dirname(overrides: list[str], exclude_keys: list[str], item_sep: str,
                     kv_sep: str) -> str:
    """``hydra.job.override_dirname`` of a job with ``overrides``, as Hydra makes it: the
    overrides not excluded, sorted, joined by ``item_sep``, with ``kv_sep`` for ``=``."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    lines = sorted(o.input_line for o in parsed if o.key_or_group not in exclude_keys)
    return item_sep.join(lines).replace("=", kv_sep)


@functools.lru_cache(maxsize=4096)  # a sweep's jobs repeat their overrides; parsing is slow
def override_key(override: str) -> str:
    """The key (or config group) an override sets: ``seed`` of ``seed=3``."""
    return OverridesParser.create().parse_override(override).key_or_group
