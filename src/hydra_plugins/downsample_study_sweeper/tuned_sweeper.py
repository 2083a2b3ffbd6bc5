"""The ``hydra/sweeper=tuned`` plugin: each variant's learning rate tuned on validation
(``sweeps.tuning``), then its seeds trained at that rate, packed as by ``packed``; with
``tune_only`` (the ``lr_search`` preset), the tuning alone."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra_plugins.downsample_study_sweeper.packed_sweeper import PackedSweeper


def lr_search(options: dict[str, Any]) -> Any:
    """The sweeper's ``lr`` options as a checked ``LrSearch`` (a ``ConfigError`` naming the key)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from downsample_study.config.messages import node_message
    from downsample_study.errors import ConfigError
    from downsample_study.sweeps.tuning import LrSearch

    known = list(LrSearch.__dataclass_fields__)
    for key in options:
        if key not in known:
            raise ConfigError(f"hydra.sweeper.lr.{key}: no such option; the options are "
                              f"{', '.join(known)}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LrSearch), options))
    except OmegaConfBaseException as err:
        raise ConfigError(node_message(err, prefix="hydra.sweeper.lr")) from None


log = logging.getLogger("downsample_study")


class TunedSweeper(PackedSweeper):
    name = "tuned"

    def __init__(self, max_batch_size: int | None = None,
                 params: dict[str, str] | None = None, lr: dict[str, Any] | None = None,
                 tune_only: bool = False, storage: Any = None):
        """``storage``: the Optuna storage ``lr_search`` once took, refused with what to use."""
        super().__init__(max_batch_size, params)
        self.lr = dict(lr or {})
        self.tune_only, self.storage = tune_only, storage

    def _search(self) -> Any:
        """The checked ``LrSearch`` of this sweep; a ``ConfigError`` naming the key."""
        from downsample_study.errors import ConfigError

        if self.storage is not None:
            raise ConfigError(f"hydra.sweeper.storage: not taken ({self.storage}): each "
                              f"variant's study is kept in the sweep folder, tuning/<variant>/ "
                              f"(its trials and best.yaml), and the same command into the same "
                              f"hydra.sweep.dir continues it; leave storage out")
        if not isinstance(self.tune_only, bool):
            raise ConfigError(f"hydra.sweeper.tune_only: must be true or false, got "
                              f"{self.tune_only!r}")
        search = lr_search(self.lr)
        if self.tune_only and search.trials == 0:
            raise ConfigError("hydra.sweeper.lr.trials: must be >= 1 when "
                              "hydra.sweeper.tune_only is true (the studies are all it runs), "
                              "got 0")
        return search

    def sweep(self, arguments: list[str]) -> Any:
        from downsample_study.sweeps.packing import alone
        from downsample_study.sweeps.tuning import check_rate_not_swept

        self.search = self._search()
        if self.search.trials and alone(self.config) is None:
            choice = self.config.hydra.runtime.choices.get("hydra/sweeper", self.name)
            check_rate_not_swept([*(f"{k}={v}" for k, v in self.params.items()), *arguments],
                                 choice, self.tune_only)
        return super().sweep(arguments)

    def _launch(self, jobs: list[list[str]], first_index: int) -> Any:
        self.validate_batch_is_legal(jobs)
        returns = self.launcher.launch(jobs, initial_job_idx=first_index)
        self.launched = max(self.launched, first_index + len(jobs))
        return returns

    def _compose(self, overrides: list[str]) -> dict[str, Any]:
        """A job's config, resolved as its task resolves it, less the ``hydra`` node."""
        from omegaconf import OmegaConf

        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        return {key: OmegaConf.to_container(config[key], resolve=True, enum_to_str=True)
                if OmegaConf.is_config(config[key]) else config[key]
                for key in config if key != "hydra"}

    def prepare(self, jobs: list[list[str]], sweep_dir: Path) -> list[list[str]]:
        from downsample_study.sweeps.naming import override_dirname
        from downsample_study.sweeps.packing import alone
        from downsample_study.sweeps.tuning import at_tuned_lr, check_trial_seed, tune, variants

        search = self.search
        if search.trials == 0:
            return jobs
        if (reason := alone(self.config)) is not None:
            log.info("tuning: off, %s", reason)
            return jobs
        check_trial_seed(search, jobs, int(self.config.seed))
        names = self.config.hydra.job.config.override_dirname
        tuned = []
        for number, (variant, seeds) in enumerate(variants(jobs).items()):
            dirname = override_dirname(list(variant), list(names.exclude_keys), names.item_sep,
                                       names.kv_sep)
            best = tune(variant, dirname, search, self._launch, self._compose, sweep_dir,
                        number * search.trials)
            if best is None:  # the sweep was stopped: nothing more is launched
                return []
            tuned += [at_tuned_lr(job, best.lr) for job in seeds]
        return [] if self.tune_only else tuned
