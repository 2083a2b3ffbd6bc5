"""What makes two runs the same job: the config keys that say what a job trains and
measures. Paths, logging, devices, speed settings and the like do not: a job moved to another
machine or resumed on a GPU is still the same job."""

from __future__ import annotations

from typing import Any

DEFINING_NODES = ("seed", "dataset", "model", "downsample", "optimizer", "evaluation")
# how long a job trains: a checkpoint of a shorter run is where a longer one goes on from
TRAINING_LENGTH = ("max_epochs", "min_epochs", "max_steps", "min_steps", "max_time")
DEFINING_TRAINER_ARGS = (
    *TRAINING_LENGTH, "limit_train_batches", "limit_val_batches", "limit_test_batches",
    "overfit_batches", "fast_dev_run", "val_check_interval", "check_val_every_n_epoch",
    "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "precision",
)
# settings in those nodes that change how, not what, a job computes
INCIDENTAL = frozenset({"dataset.eval_batch_size", "dataset.verify_checksums",
                        "dataset.download", "optimizer.fused"})
MAX_SHOWN = 3


def _flat(prefix: str, value: Any, into: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}", item, into)
    elif prefix not in INCIDENTAL:
        into[prefix] = value
    return into


def config_differences(earlier: dict[str, Any], current: dict[str, Any], *,
                       training_length: bool = True) -> list[str]:
    """The defining keys whose values differ, ``"optimizer.lr: 0.001 there, 0.003 here"``,
    between two resolved configs as plain data (without ``training_length``: less the
    Trainer's ``TRAINING_LENGTH``).

    A key that only one side has (one added in a later version) is not compared; an unset
    Trainer argument is Lightning's default, the same on both sides.
    """
    before, now = {}, {}
    for node in DEFINING_NODES:
        if node in earlier and node in current:
            _flat(node, earlier[node], before)
            _flat(node, current[node], now)
    keys = before.keys() & now.keys()
    if "trainer" in earlier and "trainer" in current:
        for arg in DEFINING_TRAINER_ARGS:
            if not training_length and arg in TRAINING_LENGTH:
                continue
            key = f"trainer.{arg}"
            before[key], now[key] = earlier["trainer"].get(arg), current["trainer"].get(arg)
            keys.add(key)
    return [f"{key}: {_shown(before[key])} there, {_shown(now[key])} here"
            for key in sorted(keys) if before[key] != now[key]]


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value) if isinstance(value, str) else str(value)


def listed(differences: list[str]) -> str:
    shown = "; ".join(differences[:MAX_SHOWN])
    more = len(differences) - MAX_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")
