"""How far a sweep's running jobs have got, from their ``epochs.csv``, and the time left at
their speed per epoch: unlike the finished jobs' pace, it is there from the first epoch and a
pause does not skew it (training only: a job's tests come after)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from downsample_study.errors import ResultsError, UserError
from downsample_study.layout import CONFIG_FILE
from downsample_study.results import read_epochs
from downsample_study.storage import read_yaml


@dataclass(frozen=True)
class JobEpochs:
    """A running job: the epochs it has trained, of how many planned, and its seconds per
    epoch in this attempt (a resumed job's earlier epochs took an earlier attempt's time)."""

    trained: int = 0
    planned: int | None = None  # its trainer.max_epochs; None when not known yet
    per_epoch: float | None = None


def job_epochs(folder: Path) -> JobEpochs:
    """How far the job running in ``folder`` has got."""
    try:
        rows = read_epochs(folder)
        config = read_yaml(folder / CONFIG_FILE)
    except (ResultsError, UserError):  # being written: the job says more at its next epoch
        return JobEpochs()
    planned = OmegaConf.select(config, "trainer.max_epochs")
    planned = planned if isinstance(planned, int) and planned > 0 else None
    if not rows:
        return JobEpochs(planned=planned)
    seconds = [float(row.get("seconds", 0.0)) for row in rows]
    this_attempt = 1  # its rows: the last ones, their seconds (since its fit began) rising
    while this_attempt < len(rows) and 0 < seconds[-this_attempt - 1] < seconds[-this_attempt]:
        this_attempt += 1
    per_epoch = seconds[-1] / this_attempt if seconds[-1] > 0 else None
    return JobEpochs(int(rows[-1]["epoch"]), planned, per_epoch)


def where(jobs: list[JobEpochs]) -> str:
    """``at epoch 9 of 20``, ``at epochs 3-9 of 20``, or each job's ``trained/planned``."""
    if len({job.planned for job in jobs}) > 1:
        pairs = sorted({(job.trained, job.planned or 0) for job in jobs})
        return "at epochs " + ", ".join(f"{done}/{total or '?'}" for done, total in pairs)
    trained = sorted({job.trained for job in jobs})
    span = f"epoch {trained[0]}" if len(trained) == 1 else f"epochs {trained[0]}-{trained[-1]}"
    planned = jobs[0].planned
    return f"at {span}" + ("" if planned is None else f" of {planned}")


def seconds_left(jobs: list[JobEpochs], left: int) -> float | None:
    """The training time of ``left`` unfinished jobs (the running ``jobs`` among them) run as
    many at once as now: the running ones' epochs left, then rounds of whole jobs at their
    mean pace. None before a running job has finished an epoch of a known number."""
    timed = [job for job in jobs if job.per_epoch is not None and job.planned is not None]
    if not timed:
        return None
    pace = sum(job.per_epoch for job in timed) / len(timed)
    length = round(sum(job.planned for job in timed) / len(timed))
    known = [(job.per_epoch or pace, job.planned or length, job.trained) for job in jobs]
    finishing = max(per_epoch * (planned - trained) for per_epoch, planned, trained in known)
    whole_job = sum(per_epoch * planned for per_epoch, planned, _ in known) / len(jobs)
    rounds = math.ceil(max(left - len(jobs), 0) / len(jobs))
    return max(finishing, 0.0) + rounds * whole_job
