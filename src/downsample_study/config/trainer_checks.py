"""``trainer.*`` values that Lightning accepts but that make no sense for a job here.

Caught at start-up, naming the key, rather than in the middle of ``fit`` or after a run that
trained nothing or never validated (validation selects the checkpoint the job reports)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from downsample_study.errors import ConfigError

_PLAIN_TYPES = {int: "int", float: "float", str: "str", bool: "bool", type(None): "null"}
_WORDS = {"int": ["an integer"], "float": ["a number"], "str": ["a string"],
          "bool": ["true", "false"], "null": []}


def plain_values(annotation: Any) -> dict[str, list] | None:
    """What a Trainer argument's annotation admits from a config: ``{"types": [...], "values":
    [...]}``, the plain types' names and the ``Literal`` values; None where it also admits an
    object (a ``timedelta``, an ``Accelerator``, a list), which is left to Lightning."""
    if annotation in _PLAIN_TYPES:
        return {"types": [_PLAIN_TYPES[annotation]], "values": []}
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = list(typing.get_args(annotation))
        plain = all(type(v) in _PLAIN_TYPES for v in values)
        return {"types": [], "values": values} if plain else None
    if origin in (Union, types.UnionType):
        parts = [plain_values(a) for a in typing.get_args(annotation)]
        if any(part is None for part in parts):
            return None
        return {key: [x for part in parts for x in part[key]] for key in ("types", "values")}
    return None


def _admits(spec: dict[str, list], value: Any) -> bool:
    kinds = spec["types"]
    return (("bool" in kinds and isinstance(value, bool))
            or ("int" in kinds and isinstance(value, int) and not isinstance(value, bool))
            or ("float" in kinds and _number(value))
            or ("str" in kinds and isinstance(value, str))
            or any(type(v) is type(value) and v == value for v in spec["values"]))


def _check_types(args: dict[str, Any], specs: dict[str, dict[str, list] | None]) -> None:
    for key, value in args.items():
        spec = specs.get(key)
        if spec is None or _admits(spec, value):
            continue
        kinds = [t for t in spec["types"] if not (t == "int" and "float" in spec["types"])]
        allowed = [word for kind in kinds for word in _WORDS[kind]]
        allowed += [repr(v) for v in spec["values"]]
        allowed += ["null"] if "null" in spec["types"] else []
        listed = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 else allowed[0]
        raise ConfigError(f"trainer.{key}: expected {listed}, got {value!r}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _limit(args: dict[str, Any], key: str, why: str) -> None:
    """``limit_*_batches``: a number of batches (int >= 1) or a fraction in (0, 1]."""
    value = args.get(key)
    if not _number(value):
        return
    fraction = isinstance(value, float)
    if value <= 0 or (fraction and value > 1):
        raise ConfigError(f"trainer.{key}: a number of batches >= 1 or a fraction in (0, 1] "
                          f"is required, got {value} ({why})")


def check_trainer(args: dict[str, Any], specs: dict[str, dict[str, list] | None]) -> None:
    """Raise ``ConfigError`` naming the first ``trainer.*`` value that makes no sense, or whose
    type its annotation does not admit (``specs``: each argument's ``plain_values``, as
    ``store.trainer_arguments()`` gives them)."""
    _check_types(args, specs)
    epochs, steps = args.get("max_epochs"), args.get("max_steps", -1)
    bounded_by_steps = _number(steps) and steps >= 1
    if _number(epochs) and epochs < 1 and not (epochs == -1 and bounded_by_steps):
        what = "trains forever" if epochs == -1 else "trains nothing"
        raise ConfigError(f"trainer.max_epochs: must be >= 1, got {epochs} ({what}; -1 only "
                          f"with trainer.max_steps >= 1)")
    if _number(steps) and steps != -1 and steps < 1:
        raise ConfigError(f"trainer.max_steps: must be >= 1, or -1 for no limit, got {steps}")
    _limit(args, "limit_train_batches", "with none the job trains nothing")
    _limit(args, "limit_val_batches", "validation selects the checkpoint the job reports")
    _limit(args, "limit_test_batches", "the test pass gives the job's numbers")
    every = args.get("check_val_every_n_epoch")
    if _number(every) and every is not None:
        if every < 1:
            raise ConfigError(f"trainer.check_val_every_n_epoch: must be >= 1, got {every}")
        if _number(epochs) and epochs >= 1 and every > epochs:
            raise ConfigError(f"trainer.check_val_every_n_epoch: {every} > trainer.max_epochs="
                              f"{epochs} never validates, and validation selects the "
                              f"checkpoint the job reports")
    interval = args.get("val_check_interval")
    if _number(interval) and (interval <= 0 or (isinstance(interval, float) and interval > 1)):
        raise ConfigError(f"trainer.val_check_interval: a number of steps >= 1 or a fraction of "
                          f"an epoch in (0, 1] is required, got {interval}")
    for key, low in (("log_every_n_steps", 1), ("accumulate_grad_batches", 1),
                     ("min_epochs", 0), ("gradient_clip_val", 0)):
        value = args.get(key)
        if _number(value) and value < low:
            raise ConfigError(f"trainer.{key}: must be >= {low}, got {value}")
    low_epochs = args.get("min_epochs")
    if _number(low_epochs) and _number(epochs) and epochs >= 1 and low_epochs > epochs:
        raise ConfigError(f"trainer.min_epochs: {low_epochs} > trainer.max_epochs={epochs}")
