"""The jobs a multirun planned, named as their folders are: what a sweep's jobs are counted
against, so an earlier sweep's folder in the same ``hydra.sweep.dir`` is told apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from downsample_study.config.defining import incidental_keys
from downsample_study.config.store import CONFIG_DIR, trainer_arguments
from downsample_study.errors import UserError
from downsample_study.sweeps.naming import override_key
from downsample_study.sweeps.packing import alone, planned_jobs
from downsample_study.sweeps.tuning import LR_KEY, LrSearch


def tuned_search(config: Any) -> LrSearch | None:
    """The search of a multirun's tuned sweeper (its saved ``config``), where it tunes, as
    ``TunedSweeper.prepare`` decides; else None."""
    target = str(OmegaConf.select(config, "hydra.sweeper._target_", default="") or "")
    if not target.endswith("TunedSweeper") or alone(config) is not None:
        return None
    options = OmegaConf.select(config, "hydra.sweeper.lr")
    try:
        search = LrSearch(**(OmegaConf.to_container(options) if options is not None else {}))
    except (TypeError, UserError):  # refused when the sweep started: it tuned nothing
        return None
    return search if search.trials else None


def tunes_only(config: Any) -> bool:
    """Whether a multirun's tuned sweeper runs its studies alone (``hydra.sweeper.tune_only``,
    the ``lr_search`` preset), planning no test job."""
    return tuned_search(config) is not None and OmegaConf.select(
        config, "hydra.sweeper.tune_only", default=False) is True


def sweep_jobs(config: Any) -> list[list[str]] | None:
    """Every job's overrides, from a multirun's saved ``config``, less the rate a tuned sweeper
    sets; None for other sweepers."""
    jobs = planned_jobs(config.hydra)
    if jobs is not None and tuned_search(config) is not None:
        jobs = [_untuned(job, [LR_KEY]) for job in jobs]
    return jobs


class Plan:
    """The jobs a multirun planned, each named by its overrides less the keys that do not
    define a job (``config/defining.py``) and the rates a tuned sweeper set. Started jobs are
    named the same way, so a re-run with its data elsewhere plans the same jobs."""

    def __init__(self, jobs: list[list[str]]):
        self.exclude = frozenset(incidental_keys(CONFIG_DIR, tuple(trainer_arguments())))
        self.jobs = list(dict.fromkeys(self.named(job) for job in jobs))  # in the plan's order
        self._members = set(self.jobs)

    @classmethod
    def of(cls, config: Any) -> Plan | None:
        """The plan of a multirun's saved config; None where its plan cannot be read."""
        jobs = sweep_jobs(config)
        return None if jobs is None else cls([] if tunes_only(config) else jobs)

    def named(self, overrides: Sequence[str]) -> frozenset[str]:
        """A job's overrides (planned, or a started job's ``.hydra/overrides.yaml``) as the
        plan names it: less the excluded keys and the keys its ``tuned`` override lists."""
        value = next((o.split("=", 1)[1] for o in overrides if override_key(o) == "tuned"), "[]")
        tuned = [key.strip() for key in value.strip("[]").split(",") if key.strip()]
        return frozenset(o for o in _untuned(overrides, tuned)
                         if override_key(o) not in self.exclude)

    def __contains__(self, named: frozenset[str]) -> bool:
        return named in self._members


def _untuned(overrides: Sequence[str], tuned: list[str]) -> list[str]:
    """A job's overrides without those of the keys a sweeper tuned (and ``tuned`` itself)."""
    return [o for o in overrides if override_key(o) not in {*tuned, "tuned"}]
