"""The jobs a multirun planned, named as their folders are: what progress, the sweep summary
and the report count a sweep's jobs against (a folder of an earlier sweep into the same
``hydra.sweep.dir`` is told apart)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from downsample_study.sweeps.naming import override_key
from downsample_study.sweeps.packing import planned_jobs
from downsample_study.sweeps.tuning import LR_KEY


def sweep_jobs(hydra: Any) -> list[list[str]] | None:
    """The overrides of every job of a multirun, from its ``hydra`` config node
    (``planned_jobs``); a tuned sweep's without the rate it set. None for other sweepers."""
    jobs = planned_jobs(hydra)
    if jobs is not None and str(hydra.sweeper.get("_target_", "")).endswith("TunedSweeper"):
        jobs = [_untuned(job, [LR_KEY]) for job in jobs]
    return jobs


class Plan:
    """The jobs a multirun planned, each as the overrides that name it: without those Hydra
    leaves out of a job folder's name (``exclude_keys``: paths, ``logger.group``, ``pack.*``)
    and without the rates a tuned sweeper set. A job started in a folder is named the same way,
    so the sweep run again with its data elsewhere plans the same jobs, and an earlier sweep's
    job (other overrides, the same ``hydra.sweep.dir``) is told apart."""

    def __init__(self, hydra: Any, jobs: list[list[str]]):
        self.exclude = frozenset(OmegaConf.select(
            hydra, "job.config.override_dirname.exclude_keys", default=None) or [])
        self.jobs = list(dict.fromkeys(self.named(job) for job in jobs))  # in the plan's order
        self._members = set(self.jobs)

    @classmethod
    def of(cls, hydra: Any) -> Plan | None:
        """The plan of the multirun whose ``hydra`` node this is; None for sweepers whose
        plan cannot be read (``sweep_jobs``)."""
        jobs = sweep_jobs(hydra)
        return None if jobs is None else cls(hydra, jobs)

    def named(self, overrides: Sequence[str]) -> frozenset[str]:
        """A job's overrides (planned, or a started job's ``.hydra/overrides.yaml``) as the
        plan names it: less the excluded keys and the keys its ``tuned`` override lists."""
        value = next((o.split("=", 1)[1] for o in overrides if override_key(o) == "tuned"),
                     "[]")
        tuned = [key.strip() for key in value.strip("[]").split(",") if key.strip()]
        return frozenset(o for o in _untuned(overrides, tuned)
                         if override_key(o) not in self.exclude)

    def has(self, folder: Path) -> bool:
        """Whether the job started in ``folder`` is one of the plan's; True where its
        overrides cannot be read."""
        started = started_overrides(folder)
        return started is None or self.named(started) in self._members


def started_overrides(folder: Path) -> list[str] | None:
    """The overrides of the job started in ``folder`` (its ``.hydra/overrides.yaml``); None
    where they cannot be read."""
    try:
        overrides = yaml.load((folder / ".hydra" / "overrides.yaml").read_text(),
                              Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def _untuned(overrides: Sequence[str], tuned: list[str]) -> list[str]:
    """A job's overrides without those of the keys a sweeper tuned (and ``tuned`` itself)."""
    return [o for o in overrides if override_key(o) not in {*tuned, "tuned"}]
