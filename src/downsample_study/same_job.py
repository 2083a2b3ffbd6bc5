"""Whether the run recorded in a job's folder is this job. A re-run skips a job whose folder
holds a completed ``results.json``, and the folder is named after the job's overrides only: a
folder written with another configuration (an edited YAML, another ``experiment`` default, a
second sweep pointed at the same ``hydra.sweep.dir``) would have its results taken as this
job's. (A run that did not complete is run again, from its checkpoint, which keeps its own
configuration: ``training.resume.SameJob``.)

The keys compared are those that say what a job trains and measures; paths, logging,
devices, speed settings and the like are not, so a job moved to another machine or resumed
on a GPU is still the same job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from downsample_study.errors import OtherJobError, ResultsError, UserError
from downsample_study.results import RESULTS_FILE, Results, read_results
from downsample_study.storage import read_yaml

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


def completed_results(folder: Path, config: dict[str, Any]) -> Results | None:
    """The results in ``folder`` when an earlier run of this job, ``config`` (resolved, as
    plain data), completed there: what a re-run skips. None when no run completed there;
    ``OtherJobError`` when the run that did was of another configuration in what it trains
    or measures. A run that failed or was stopped is run again, from its checkpoint where it
    has one, which keeps its own configuration (``training.resume.SameJob`` compares that)."""
    try:
        results = read_results(Path(folder) / RESULTS_FILE)
    except ResultsError:
        return None
    if not results.completed:
        return None
    earlier = results.config
    differences = config_differences(earlier, config)
    if differences and not config_differences(earlier, config, training_length=False):
        raise OtherJobError(f"{folder}: holds the results of this job trained for another "
                            f"length ({listed(differences)}); delete its {RESULTS_FILE} to "
                            f"train it on from its last checkpoint, or run it into another "
                            f"folder")
    if differences:
        raise OtherJobError(f"{folder}: holds the results of a run of another configuration "
                            f"({listed(differences)}); run this job into another folder, or "
                            f"delete that one to run it here")
    return results


def listed(differences: list[str]) -> str:
    shown = "; ".join(differences[:MAX_SHOWN])
    more = len(differences) - MAX_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def differences_from_its_job(folder: Path, earlier: dict[str, Any]) -> list[str]:
    """How the config of the run recorded in ``folder`` (``earlier``, its ``results.json``'s)
    differs from the folder's job as the last run into it composed it (``.hydra/config.yaml``,
    which Hydra writes as each job starts): a re-run with another configuration that refused
    the folder leaves exactly that. Empty where the job's config cannot be read or resolved."""
    try:
        job = OmegaConf.to_container(read_yaml(Path(folder) / ".hydra" / "config.yaml"),
                                     resolve=True, enum_to_str=True)
    except (UserError, OmegaConfBaseException):
        return []
    return config_differences(earlier, job) if isinstance(job, dict) else []
