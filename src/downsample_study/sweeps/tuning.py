"""Fair tuning for ``hydra/sweeper=tuned``: each variant's learning rate, then its test seeds.

One learning rate for all operators measures the rate as much as them, so each variant gets
an Optuna TPE search of ``optimizer.lr`` at a seed none of its test seeds use. A re-run reads a
study's ``best.yaml``, or asks the seeded TPE, on the same Optuna version, the same rates again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from downsample_study.checks import above, at_least
from downsample_study.config.defining import config_differences, difference, listed
from downsample_study.errors import ConfigError, OtherJobError, ResultsError, UserError
from downsample_study.evaluations.configs import EVALUATIONS
from downsample_study.layout import BEST_FILE, RESULTS_FILE, TUNING_DIR, job_dir_name
from downsample_study.results import read_results, versions
from downsample_study.runtime.locks import wait_for_others
from downsample_study.runtime.same_job import completed_results
from downsample_study.runtime.signals import sweep_stopped
from downsample_study.storage import read_yaml, write_yaml
from downsample_study.sweeps.naming import override_key

log = logging.getLogger("downsample_study")

LR_KEY = "optimizer.lr"
# the trials select a learning rate on validation: what only the test seeds need is off
TRIAL_OVERRIDES = tuple(f"evaluation.{name}.enabled=false" for name in EVALUATIONS.names())


@dataclass
class LrSearch:
    """The sweeper's ``lr`` node: the search of each variant's learning rate."""

    trials: int = 12  # per variant; 0: no tuning, every job at its own optimizer.lr
    low: float = 1e-4
    high: float = 1e-1
    seed: int = 100  # the trials' seed, none of the test seeds
    sampler_seed: int = 0  # TPE's, so a re-run asks for the same rates
    random_trials: int = 5  # drawn at random (log-uniform) before TPE models the rest
    at_once: int = 1  # trials launched together (side by side with hydra/launcher=parallel)
    epochs: int | None = None  # the trials' trainer.max_epochs (None: the test seeds')

    def __post_init__(self) -> None:
        at_least("hydra.sweeper.lr.trials", self.trials, 0)
        above("hydra.sweeper.lr.low", self.low, 0)
        if not self.high > self.low:
            raise ConfigError(f"hydra.sweeper.lr.high: must be above lr.low ({self.low}), "
                              f"got {self.high}")
        at_least("hydra.sweeper.lr.at_once", self.at_once, 1)
        at_least("hydra.sweeper.lr.random_trials", self.random_trials, 1)
        if self.epochs is not None:
            at_least("hydra.sweeper.lr.epochs", self.epochs, 1)

    def settings(self) -> dict[str, Any]:
        """What decides the study's outcome (``at_once`` only how fast it gets there)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "at_once"}


@dataclass(frozen=True)
class Tuned:
    """A variant's best learning rate and what its study found."""

    lr: float
    value: float  # the validation top-1 at that rate
    trials: list[dict[str, Any]]  # {lr, value} for every trial (value None: it failed)
    optuna: str | None = None  # the version that proposed the rates (None: not recorded)


def variants(jobs: Sequence[Sequence[str]]) -> dict[tuple[str, ...], list[list[str]]]:
    """The jobs of each variant: the same overrides but the seed, in the sweep's order."""
    found: dict[tuple[str, ...], list[list[str]]] = {}
    for job in jobs:
        key = tuple(sorted(o for o in job if override_key(o) != "seed"))
        found.setdefault(key, []).append(list(job))
    return found


def check_trial_seed(search: LrSearch, jobs: Sequence[Sequence[str]], default_seed: int) -> None:
    """A ``ConfigError`` when the trials' seed is a test seed (``default_seed`` for a job with
    none): the rate would be picked on the initialisation and data order it is measured on."""
    def seed(job: Sequence[str]) -> int | None:  # None: not a number here (an interpolation)
        value = next((o.split("=", 1)[1] for o in job if override_key(o) == "seed"), None)
        return default_seed if value is None else int(value) if value.isdigit() else None

    seeds = sorted({s for job in jobs if (s := seed(job)) is not None})
    if search.seed in seeds:
        shown = (f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 2 and seeds == list(
            range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds)))
        raise ConfigError(f"hydra.sweeper.lr.seed: {search.seed} is one of the test seeds "
                          f"({shown}); the trials need a seed of their own")


def check_rate_not_swept(overrides: Sequence[str], sweeper: str, tune_only: bool) -> None:
    """A ``ConfigError`` when the sweep's ``overrides`` set the tuned rate: it would be ignored,
    and ``optimizer.lr=a,b`` would make variants that tune to the same rate and train alike."""
    for override in overrides:
        if override_key(override) == LR_KEY:
            instead = (" (hydra.sweeper.lr.low and lr.high bound its search)" if tune_only else
                       ", or set hydra.sweeper.lr.trials=0 to train at the rates given")
            raise ConfigError(f"{override}: hydra/sweeper={sweeper} tunes {LR_KEY} for each "
                              f"variant; leave it out{instead}")


def variant_folder(dirname: str) -> str:
    """A variant's study folder in the sweep, from its ``override_dirname`` (as a job's)."""
    return f"{TUNING_DIR}/{job_dir_name(dirname)}"


def read_best(folder: Path, search: LrSearch | None = None) -> Tuned | None:
    """The study's outcome, or None if none yet; a ``UserError`` naming the file if this module
    did not write it, or (given this sweep's ``search``) another search did."""
    path = folder / BEST_FILE
    if not path.is_file():
        return None
    again = "delete it to run the study again"
    try:
        data = OmegaConf.to_container(read_yaml(path))
        lr, value = float(data["lr"]), float(data["value"])
        trials = [{"lr": float(t["lr"]),  # a failed trial's value: None
                   "value": None if t["value"] is None else float(t["value"])}
                  for t in data["trials"]]
        optuna = data.get("optuna")  # absent in the files of earlier versions
        if not trials:
            raise ValueError("no trials")
    except UserError as err:
        raise UserError(f"{err}; {again}") from None
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: not a study's outcome ({type(err).__name__}: {err}); it "
                        f"needs lr, value and its trials' lr and value: {again}") from None
    earlier = data.get("search")  # absent in the files of earlier versions
    if search is not None and isinstance(earlier, dict):
        now = search.settings()
        differences = [difference(f"lr.{key}", earlier[key], now[key])
                       for key in now if key in earlier and earlier[key] != now[key]]
        if differences:
            raise UserError(f"{path}: the outcome of another search ({'; '.join(differences)})"
                            f"; {again}, or sweep into another folder")
    return Tuned(lr, value, trials, None if optuna is None else str(optuna))


Launch = Callable[[list[list[str]], int], Sequence[Any]]  # the launcher's, job returns back
Compose = Callable[[list[str]], dict[str, Any]]  # a job's overrides -> its config, plain data


def trial_overrides(variant: Sequence[str], lr: float, search: LrSearch, where: str,
                    number: int) -> list[str]:
    """The overrides of a variant's trial ``number`` at ``lr``, in its study folder."""
    epochs = [] if search.epochs is None else [f"trainer.max_epochs={search.epochs}"]
    return [*variant, f"seed={search.seed}", f"{LR_KEY}={lr!r}", *TRIAL_OVERRIDES, *epochs,
            f"hydra.sweep.subdir='{where}/trial{number}'"]


def check_trained_here(folder: Path, variant: Sequence[str], search: LrSearch, where: str,
                       compose: Compose) -> None:
    """A ``UserError`` when the study in ``folder`` trained another configuration than its
    trials would now (an edited YAML keeps the variant's name): its rate belongs to that one.
    Checked on its first completed trial; a study with no trial results left is taken as is."""
    trials = sorted((p for p in folder.glob("trial*") if p.name[5:].isdigit()),
                    key=lambda p: int(p.name[5:]))
    for trial in trials:
        try:
            results = read_results(trial / RESULTS_FILE)
        except ResultsError:
            continue
        if not results.completed:
            continue
        lr = float(results.config["optimizer"]["lr"])
        now = compose(trial_overrides(variant, lr, search, where, int(trial.name[5:])))
        if differences := config_differences(results.config, now):
            raise UserError(f"{folder / BEST_FILE}: found by trials of another configuration "
                            f"({listed(differences)}); delete {folder} to tune this one, or "
                            f"sweep into another folder")
        return


def optuna_version() -> str:
    """The installed Optuna's version, as each job's ``results.json`` records it."""
    return versions()["optuna"]


def check_same_optuna(folder: Path, name: str, search: LrSearch) -> None:
    """A ``UserError`` when the unfinished study in ``folder`` ran its trials on another Optuna
    version: its seeded sampler may propose other rates here, which the trials' folders (named
    by number) do not hold, so the study cannot go on with them."""
    for path in sorted(folder.glob(f"trial*/{RESULTS_FILE}")):
        try:
            theirs = read_results(path).provenance.versions.get("optuna")
        except ResultsError:
            continue
        if theirs is not None and theirs != optuna_version():
            raise UserError(f"tuning {name}: its trials in {folder} ran on Optuna {theirs}, "
                            f"this is {optuna_version()}, whose sampler may propose other "
                            f"rates from lr.sampler_seed {search.sampler_seed}; finish the "
                            f"study with optuna=={theirs}, or delete {folder} to run it again")


def tune(variant: Sequence[str], dirname: str, search: LrSearch, launch: Launch,
         compose: Compose, sweep_dir: Path, first_index: int) -> Tuned | None:
    """The best learning rate of ``variant``, from its ``best.yaml`` or a study of its own; None
    if the sweep was stopped first (no ``best.yaml``: the same command goes on with it)."""
    where = variant_folder(dirname)
    folder = sweep_dir / where
    name = dirname or "default"
    if (known := read_best(folder, search)) is not None:
        check_trained_here(folder, variant, search, where, compose)
        if known.optuna is not None and known.optuna != optuna_version():
            log.warning("tuning %s: %s was found on Optuna %s, this is %s, whose sampler may "
                        "propose other rates; its rate is used as found", name,
                        folder / BEST_FILE, known.optuna, optuna_version())
        log.info("tuning %s: lr %.3g from %s", name, known.lr, folder / BEST_FILE)
        return known
    check_same_optuna(folder, name, search)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(
                                    n_startup_trials=search.random_trials,
                                    seed=search.sampler_seed))
    space = {LR_KEY: optuna.distributions.FloatDistribution(search.low, search.high, log=True)}
    while len(study.trials) < search.trials:
        batch = [study.ask(space)
                 for _ in range(min(search.at_once, search.trials - len(study.trials)))]
        jobs = [trial_overrides(variant, t.params[LR_KEY], search, where, t.number) for t in batch]
        returns = launch(jobs, first_index + batch[0].number)
        if sweep_stopped(sweep_dir) is not None:
            return None
        for trial, job, returned in zip(batch, jobs, returns, strict=True):
            value = returned.return_value  # a job's exception is raised here
            if value is None:  # not completed here; maybe by another sweep into the folder
                value = _completed_elsewhere(folder / f"trial{trial.number}", compose(job))
            if value is None or not math.isfinite(value):  # the job did not complete
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, float(value))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise UserError(f"tuning {name}: none of its "
                        f"{search.trials} trials completed (see {folder}/trial*/results.json)")
    best = max(done, key=lambda t: t.value)
    trials = ({"lr": t.params[LR_KEY], "value": t.value} for t in study.trials)
    tuned = Tuned(best.params[LR_KEY], best.value, sorted(trials, key=lambda t: t["lr"]),
                  optuna_version())
    folder.mkdir(parents=True, exist_ok=True)
    write_yaml(folder / BEST_FILE,  # its being there says the study is over
               {"lr": tuned.lr, "value": tuned.value, "trials": tuned.trials,
                "search": search.settings(), "optuna": tuned.optuna})
    log.info("tuning %s: lr %.3g (val/acc_top1 %.4f, best of %d trials)",
             name, tuned.lr, tuned.value, len(study.trials))
    return tuned


def _completed_elsewhere(trial: Path, config: dict[str, Any]) -> float | None:
    """The value of a trial another process ran (a second sweep into the folder), once it
    ends; None if it did not complete or ran another configuration than ``config``."""
    wait_for_others([trial])
    try:
        results = completed_results(trial, config)
    except OtherJobError:
        return None
    return results.val.acc_top1 if results is not None and results.val is not None else None


def at_tuned_lr(jobs: Sequence[str], lr: float) -> list[str]:
    """A test seed's overrides at its variant's tuned learning rate."""
    return [*(o for o in jobs if override_key(o) != LR_KEY), f"{LR_KEY}={lr!r}",
            f"tuned=[{LR_KEY}]"]
