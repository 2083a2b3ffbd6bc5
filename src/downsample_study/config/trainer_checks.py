"""``trainer.*`` values that Lightning accepts but that make no sense for a job here: a run
that trains forever or not at all, or that never validates (validation selects the
checkpoint the job reports), or never tests. Values of the wrong type are left to Lightning,
whose message ``build_trainer`` reports."""

from __future__ import annotations

from typing import Any

from downsample_study.errors import ConfigError


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


def check_trainer(args: dict[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first ``trainer.*`` value that makes no sense."""
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
