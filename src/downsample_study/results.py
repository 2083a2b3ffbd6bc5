"""A job's typed record: ``results.json`` (outcome, provenance), ``epochs.csv`` and ``Status``.

Files of an earlier ``SCHEMA_VERSION`` are read with the fields they lack left empty, their
epochs counted from 1 as now."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from downsample_study.choices import Choice
from downsample_study.errors import NewerResultsError, ResultsError
from downsample_study.layout import EPOCHS_FILE, RESULTS_FILE
from downsample_study.storage import atomic_write

# 1: no schema_version, provenance or typed reader (before 2026-12-01); 2: those; 3: the
# interrupted status with its signal, stopping point and checkpoint to resume from; 4: epochs
# counted from 1 (best_epoch, stopped_at), smoke_test; 5: the tracker the job logged to; 6:
# the trackers, a list (several loggers at once); 7: shift.regime (APS's regime, measured);
# 8: evaluations, one entry per evaluation (shift's numbers move there from ``shift``)
SCHEMA_VERSION = 8


class Status(Choice):
    """A job's state: ``results.json`` records the first three; a sweep's folder tells the
    rest (``sweeps/folder.py``)."""

    completed = "completed"  # trained and tested: its metrics count in the report
    failed = "failed"  # stopped by an error or a diverged loss; ``error`` says which
    interrupted = "interrupted"  # stopped by a signal; the same command resumes it
    running = "running"  # another process holds its lock
    killed = "killed"  # no results.json but a checkpoint: the same command resumes it
    not_run = "not run"  # no results.json, no checkpoint: not started, or killed before
    unreadable = "unreadable"  # a results.json that cannot be read
    other_config = "of another configuration"  # its results.json is another job's
    smoke_test = "smoke test"  # completed under trainer.fast_dev_run: not a result
    duplicate = "duplicate"  # the same variant and seed as another job (the report)


RECORDED = (Status.completed, Status.failed, Status.interrupted)


@dataclass
class Metrics:
    acc_top1: float  # top-1 accuracy, a fraction
    acc_top2: float  # top-2 accuracy, a fraction
    loss: float  # mean cross-entropy


@dataclass
class Params:
    total: int  # parameters of the network
    trainable: int  # those that require a gradient
    downsample: int  # inside the layers the downsampling operator added


@dataclass
class Resources:
    """What the job ran on (its share of the machine in a parallel sweep)."""

    slot: int | None = None  # its slot among the jobs a parallel sweep runs side by side
    device: str | None = None  # torch's name of the device it trained on
    processes: int | None = None  # the Trainer's world size (DDP: one per device)
    threads: int | None = None  # torch's threads when it started
    threads_at_end: int | None = None  # more if idle slots' cores were free
    channels_last: bool | None = None  # whether it ran in NHWC (speed.channels_last)
    precision: str | None = None  # as the Trainer ran it (16-mixed runs as bf16-mixed on CPU)


@dataclass
class Provenance:
    git_commit: str | None = None  # the checkout's commit, where the code runs from one
    git_dirty: bool | None = None  # whether it had changes not committed
    versions: dict[str, str] = field(default_factory=dict)  # python, torch, Lightning, ...

    @classmethod
    def here(cls) -> Provenance:
        commit, dirty = git_state()
        return cls(commit, dirty, versions())


@dataclass
class Results:
    status: Status  # the outcome (table above)
    config: dict[str, Any]  # resolved for a completed job; as composed for a failed one
    overrides: str = ""  # the command-line overrides that define the job (its folder's name)
    group: str | None = None  # the sweep's W&B group; the report logs into it
    error: str | None = None  # failed: the one-line reason
    traceback: str | None = None  # for a failure that is not the user's input
    params: Params | None = None
    flops_forward: int | None = None  # conv and linear FLOPs of one image's forward pass
    val: Metrics | None = None  # both from the checkpoint selected on val/acc_top1
    test: Metrics | None = None
    # what each evaluation switched on measured: {name: {"summary": {key: number}, "details":
    # {...}}} (evaluations/base.py's Measured); files before version 8 hold shift's alone
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int | None = None  # epochs trained
    best_epoch: int | None = None  # the selected checkpoint's, counted from 1
    train_seconds: float | None = None  # wall time of training (a pack's: all its members)
    checkpoint: str | None = None  # the selected checkpoint's path
    resumed_from: str | None = None  # the checkpoint this run resumed from, if any
    # interrupted: by which signal, at which point, and the checkpoint a re-run resumes from
    signal: str | None = None
    stopped_at: dict[str, int] | None = None  # {"epoch": from 1, "step": optimizer steps}
    resume_checkpoint: str | None = None  # interrupted: what the same command resumes from
    smoke_test: bool = False  # trainer.fast_dev_run: a few batches, not a result to report
    # trained in a pack (hydra/sweeper=packed): {"id", "size", "seeds"}; None: alone
    pack: dict[str, Any] | None = None
    # where its metrics went, one entry per logger: {"name": the logger, and W&B's "mode",
    # "project", "entity", "group"}; None: written before version 5 (its config's logger says)
    trackers: list[dict[str, Any]] | None = None
    resources: Resources = field(default_factory=Resources)
    provenance: Provenance = field(default_factory=Provenance.here)
    schema_version: int = SCHEMA_VERSION  # of this file's layout

    @property
    def completed(self) -> bool:
        return self.status == Status.completed

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: Any) -> Results:
        """Read a decoded ``results.json`` of this or an earlier schema version."""
        if not isinstance(data, dict) or data.get("status") not in set(RECORDED):
            raise ResultsError("not the results of a job (no status completed, failed or "
                               "interrupted)")
        try:
            known = {f.name for f in dataclasses.fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values["status"] = Status(data["status"])
            values.setdefault("config", {})
            for key, kind in (("params", Params), ("val", Metrics), ("test", Metrics)):
                if values.get(key) is not None:
                    values[key] = kind(**values[key])
            values["resources"] = Resources(**(data.get("resources") or {}))
            provenance = data.get("provenance") or {"versions": data.get("versions", {})}
            values["provenance"] = Provenance(**provenance)
            values.setdefault("schema_version", 1)
            if not isinstance(values["schema_version"], int) or not (
                    1 <= values["schema_version"] <= SCHEMA_VERSION):
                raise NewerResultsError(f"schema_version {values['schema_version']}, which this "
                                   f"version (reading 1 to {SCHEMA_VERSION}) cannot read: "
                                   f"upgrade downsample_study to read it")
            if values["schema_version"] < 8 and data.get("shift"):
                values["evaluations"] = {"shift": shift_evaluation(data["shift"])}
            if values["schema_version"] == 5:  # one tracker, or none
                values["trackers"] = [tracker for tracker in [data.get("tracker")]
                                      if tracker and tracker.get("name") != "none"]
            if values["schema_version"] < 4:  # epochs were counted from 0
                if values.get("best_epoch") is not None:
                    values["best_epoch"] += 1
                if values.get("stopped_at"):
                    values["stopped_at"] = {**values["stopped_at"],
                                            "epoch": values["stopped_at"]["epoch"] + 1}
            return cls(**values)
        except TypeError as err:
            raise ResultsError(f"unexpected fields: {err}") from None


def shift_evaluation(shift: dict[str, Any]) -> dict[str, Any]:
    """A ``shift`` entry of a file before version 8 as its ``evaluations.shift`` entry now."""
    summary = {f"{'acc' if key == 'acc_top1' else key}_{mode}": value
               for mode in ("zero", "circular") if isinstance(shift.get(mode), dict)
               for key, value in shift[mode].items()}
    details = {("max" if key == "max_shift" else key): value for key, value in shift.items()}
    return {"summary": summary, "details": details}


def write_results(output_dir: Path, results: Results) -> Path:
    """Write ``results.json`` atomically; a ``StorageError`` naming it when it cannot be."""
    path = Path(output_dir) / RESULTS_FILE
    with atomic_write(path) as f:
        json.dump(results.to_dict(), f, indent=2)
        f.write("\n")
    return path


def read_results(path: Path) -> Results:
    """The results in ``path``; ``ResultsError`` naming the file when it cannot be read."""
    path = Path(path)
    try:
        return Results.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise ResultsError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    except ResultsError as err:
        raise type(err)(f"{path}: {err}") from None


# train/lr: the learning rate of the epoch's last step (empty in files written before it)
EPOCH_COLUMNS = ("epoch", "step", "seconds", "val/loss", "val/acc_top1", "val/acc_top2",
                 "train/loss_epoch", "train/lr")
# its counting columns; the rest are metrics
COUNTS = ("epoch", "step")


def read_epochs(folder: Path) -> list[dict[str, float]]:
    """The rows of ``folder/epochs.csv`` as numbers, ``epoch`` and ``step`` as integers
    (empty when there is none); a ``ResultsError`` naming it when it is not such a table."""
    path = Path(folder) / EPOCHS_FILE
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            return [{k: int(float(v)) if k in COUNTS else float(v)
                     for k, v in row.items() if v not in ("", None)}
                    for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as err:
        raise ResultsError(f"{path}: unreadable ({type(err).__name__}: {err})") from None


def write_epoch_row(folder: Path, row: dict[str, float]) -> None:
    """Write ``row`` as the last of ``folder/epochs.csv``, after the rows of earlier epochs
    (a resumed job replaces those of the epochs it trains again)."""
    path = Path(folder) / EPOCHS_FILE
    rows = [r for r in read_epochs(folder) if r["epoch"] < row["epoch"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, EPOCH_COLUMNS)
        writer.writeheader()
        writer.writerows([*rows, row])


PACKAGES = ("downsample_study", "torch", "torchvision", "lightning", "torchmetrics",
            "hydra-core", "omegaconf", "wandb", "numpy", "optuna")


@functools.cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout this package runs from; (None, None) from a wheel or when
    git cannot tell. Dirty includes untracked files that git does not ignore."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    if commit is None:
        return None, None
    return commit.strip(), None if status is None else bool(status.strip())
