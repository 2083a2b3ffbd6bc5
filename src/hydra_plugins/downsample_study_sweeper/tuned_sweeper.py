"""The ``hydra/sweeper=tuned`` plugin: each variant's learning rate tuned on validation
(``sweeps.tuning``), then its seeds trained at that rate, packed as by ``packed``."""

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
                 params: dict[str, str] | None = None, lr: dict[str, Any] | None = None):
        super().__init__(max_batch_size, params)
        self.lr = dict(lr or {})

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
        from downsample_study.sweeps.tuning import (
            at_tuned_lr,
            check_rate_not_swept,
            check_trial_seed,
            tune,
            variants,
        )

        search = lr_search(self.lr)
        if search.trials == 0:
            return jobs
        if (reason := alone(self.config)) is not None:
            log.info("tuning: off, %s", reason)
            return jobs
        check_rate_not_swept(jobs)
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
        return tuned
