"""What makes two runs the same job: the config keys that say what a job trains and measures.

A schema field marked ``registry.INCIDENTAL`` says how or where a job runs, not what; of the
Trainer's arguments, ``DEFINING_TRAINER_ARGS`` alone define a job. Skip, resume, the report's
variants and job folders' names all follow this one marking.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from downsample_study.config.schema import CHOICES, Config

# how long a job trains: a checkpoint of a shorter run is where a longer one goes on from
TRAINING_LENGTH = ("max_epochs", "min_epochs", "max_steps", "min_steps", "max_time")
DEFINING_TRAINER_ARGS = (
    *TRAINING_LENGTH, "limit_train_batches", "limit_val_batches", "limit_test_batches",
    "overfit_batches", "fast_dev_run", "val_check_interval", "check_val_every_n_epoch",
    "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "precision",
)
MAX_SHOWN = 3


@functools.cache
def _fields(schema: type) -> dict[str, tuple[Any, bool]]:
    """Each field of a schema: (its type, whether it is marked incidental)."""
    hints = typing.get_type_hints(schema)
    return {f.name: (hints[f.name], bool(f.metadata.get("incidental")))
            for f in dataclasses.fields(schema)}


def _schemas(key: str, node: Any) -> list[type]:
    """The schemas a node of the top level may have: the chosen option's (all of them where
    the name is not given or registered, as for the keys a folder's name may hold)."""
    registry = CHOICES[key]
    name = node.get("name") if isinstance(node, dict) else None
    if name in registry:
        return [registry.schema(name)]
    return [registry.schema(name) for name in registry.names()]


def _walk(schemas: list[type], data: dict[str, Any], prefix: str, into: dict[str, Any]) -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        known = [fields[key] for fields in map(_fields, schemas) if key in fields]
        if any(incidental for _, incidental in known):
            continue
        if path == "trainer":
            into.update({f"trainer.{arg}": value[arg] for arg in DEFINING_TRAINER_ARGS
                         if isinstance(value, dict) and value.get(arg) is not None})
        elif isinstance(value, dict):
            inner = (_schemas(key, value) if not prefix and key in CHOICES else
                     [schema for kind, _ in known for schema in _inner(key, kind, prefix)])
            _walk(inner, value, f"{path}.", into)
        else:  # a tuple (OmegaConf 2.4 keeps one) is the list results.json holds
            into[path] = list(value) if isinstance(value, tuple) else value


def defining(config: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``config`` (resolved, plain data) that define its job, flattened; a key no
    schema knows counts as defining, unset Trainer arguments are left out."""
    found: dict[str, Any] = {}
    _walk([Config], config, "", found)
    return found


def config_differences(earlier: dict[str, Any], current: dict[str, Any], *,
                       training_length: bool = True) -> list[str]:
    """The defining keys that differ, as ``"optimizer.lr: 0.001 there, 0.003 here"``. A key one
    side lacks (added in a later version) is not compared, but an unset Trainer argument is, as
    Lightning's default. Without ``training_length``, ``TRAINING_LENGTH`` is left out."""
    before, now = defining(earlier), defining(current)
    keys = before.keys() & now.keys()
    if "trainer" in earlier and "trainer" in current:
        keys |= {f"trainer.{arg}" for arg in DEFINING_TRAINER_ARGS}
    if not training_length:
        keys -= {f"trainer.{arg}" for arg in TRAINING_LENGTH}
    return [difference(key, before.get(key), now.get(key))
            for key in sorted(keys) if before.get(key) != now.get(key)]


def difference(key: str, there: Any, here: Any) -> str:
    """``"optimizer.lr: 0.001 there, 0.003 here"``."""
    there, here = ("unset" if v is None else repr(v) if isinstance(v, str) else str(v)
                   for v in (there, here))
    return f"{key}: {there} there, {here} here"


def listed(differences: list[str]) -> str:
    shown = "; ".join(differences[:MAX_SHOWN])
    more = len(differences) - MAX_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def _inner(name: str, kind: Any, prefix: str) -> list[type]:
    """The schemas of the node a field holds: a choice's options, a nested schema, or none."""
    if not prefix and name in CHOICES:
        return [CHOICES[name].schema(option) for option in CHOICES[name].names()]
    return [kind] if dataclasses.is_dataclass(kind) else []


def _incidental_paths(schemas: list[type], prefix: str = "") -> list[str]:
    """The incidental keys of ``schemas``: a marked field and every key below it."""
    found = []
    for fields in map(_fields, schemas):
        for name, (kind, incidental) in fields.items():
            inner = _inner(name, kind, prefix)
            if incidental:
                found += [f"{prefix}{name}", *(f"{prefix}{name}.{key}" for schema in inner
                                               for key in _fields(schema))]
            else:
                found += _incidental_paths(inner, f"{prefix}{name}.")
    return found


@functools.cache
def incidental_keys(config_dir: Path, trainer_args: tuple[str, ...]) -> list[str]:
    """The overrides a job folder's name leaves out: every incidental key, the Trainer's
    other arguments (``trainer_args``: all it has), and each config group of ``config_dir``
    whose options set incidental keys alone (``accelerator``)."""
    keys = [*_incidental_paths([Config]),
            *(f"trainer.{arg}" for arg in trainer_args if arg not in DEFINING_TRAINER_ARGS)]
    for group in sorted(p for p in Path(config_dir).iterdir() if p.is_dir()):
        options = list(group.glob("*.yaml"))
        if options and group.name not in keys and all(
                _sets_only(option, set(keys)) for option in options):
            keys.append(group.name)
    return sorted(set(keys))


def _sets_only(option: Path, incidental: set[str]) -> bool:
    """Whether a config group's option file sets only keys of ``incidental``."""
    text = option.read_text()
    package = next((line.split("@package", 1)[1].strip() for line in text.splitlines()
                    if line.startswith("# @package")), option.parent.name)
    content = OmegaConf.to_container(OmegaConf.create(text), resolve=False) or {}
    prefix = "" if package == "_global_" else f"{package}."
    flat = [f"{prefix}{key}" for key in content if key != "defaults"]
    return bool(flat) and all(key in incidental for key in flat)
