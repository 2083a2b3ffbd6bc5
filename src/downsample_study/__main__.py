"""``python -m downsample_study [-m] key=value ...``: the Hydra entry point.

Each job runs inside ``run_job``: a user error (bad config, missing data, collapsing shapes,
diverged loss) is reported in one line, any failure writes ``status: failed`` to the job's
``results.json`` and marks its W&B run failed. A single run then exits non-zero; in a multirun
the other jobs go on and ``SweepSummary`` ends the sweep with a summary and a non-zero status.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from downsample_study.config import UserError, register_configs
from downsample_study.loggers import RunIdentity, finish_wandb
from downsample_study.results import write_results
from downsample_study.sweep import CONFIG_DIR, register_resolvers

log = logging.getLogger("downsample_study")

register_configs()
register_resolvers()


def _identity(cfg: DictConfig) -> RunIdentity:
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.job.override_dirname or "default"
    group = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        group = Path(hydra_cfg.sweep.dir).as_posix().replace("/", "_").strip("_.")
    tags = [str(cfg.get(key, {}).get("name", "")) for key in ("dataset", "downsample", "model")]
    return RunIdentity(name=name, tags=[t for t in tags if t], group=group)


def run_job(cfg: DictConfig) -> dict | None:
    from downsample_study.train import run

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    identity = _identity(cfg)
    try:
        results = run(cfg, output_dir, identity)
    except (Exception, KeyboardInterrupt) as err:
        finish_wandb(exit_code=1)
        user_error = isinstance(err, UserError)
        message = str(err) if user_error else f"{type(err).__name__}: {err}"
        if cfg.get("mode") != "summary":
            write_results(
                output_dir,
                {
                    "status": "failed",
                    "error": message,
                    "traceback": None if user_error else traceback.format_exc(),
                    "overrides": identity.name,
                    "config": OmegaConf.to_container(cfg, resolve=False),
                },
            )
        if isinstance(err, KeyboardInterrupt) or not (multirun or user_error):
            raise
        log.error("error: %s", message)
        if not multirun:
            sys.exit(1)
        return None
    finish_wandb(exit_code=0)
    return results


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    return run_job(cfg)


if __name__ == "__main__":
    main()
