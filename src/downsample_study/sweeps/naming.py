"""Names a job gets in a sweep: its folder, its W&B group (the sweep) and job type (the
variant, i.e. its overrides without the seed)."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from downsample_study.layout import shorten

# W&B limits a group to 128 characters and a job type to 64.
MAX_GROUP, MAX_JOB_TYPE = 128, 64


def sweep_id(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep's jobs: its folder, relative to the working directory."""
    path = Path(sweep_dir).absolute()
    with contextlib.suppress(ValueError):  # outside the working directory: keep it whole
        path = path.relative_to(Path.cwd())
    return shorten(path.as_posix().replace("/", "_").strip("_."), MAX_GROUP)


def variant_name(task_overrides: list[str], exclude_keys: list[str]) -> str:
    """A job's overrides without its seed: the W&B job type, shared by the seeds of a variant."""
    overrides = OverridesParser.create().parse_overrides(list(task_overrides))
    lines = sorted(o.input_line for o in overrides if o.key_or_group not in {*exclude_keys, "seed"})
    return shorten(",".join(lines) or "default", MAX_JOB_TYPE)


def override_dirname(overrides: list[str], exclude_keys: list[str], item_sep: str,
                     kv_sep: str) -> str:
    """``hydra.job.override_dirname`` of a job with ``overrides``, made as Hydra makes it."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    lines = sorted(o.input_line for o in parsed if o.key_or_group not in exclude_keys)
    return item_sep.join(lines).replace("=", kv_sep)


@functools.lru_cache(maxsize=4096)  # a sweep's jobs repeat their overrides; parsing is slow
def override_key(override: str) -> str:
    """The key (or config group) an override sets: ``seed`` of ``seed=3``."""
    return OverridesParser.create().parse_override(override).key_or_group


def split_overrides(dirname: str, item_sep: str = ",") -> list[str]:
    """``override_dirname``'s overrides again: split at each ``item_sep`` outside brackets
    and quotes (``model.channels=[6,16],seed=1``: two)."""
    parts, depth, quote, current = [], 0, "", []
    for char in dirname:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == item_sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    return [*parts, "".join(current)] if current or parts else []
