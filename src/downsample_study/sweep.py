"""What the Hydra app needs around the jobs: where its configs live, resolvers, and the
end-of-sweep summary."""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from downsample_study.results import RESULTS_FILE, read_results

log = logging.getLogger("downsample_study")


def _config_dir() -> Path:
    """``conf/`` inside the installed package (wheel), else the repository's (editable)."""
    packaged = Path(str(resources.files("downsample_study"))) / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONFIG_DIR = _config_dir()


MAX_DIR_NAME = 150


def job_dir_name(override_dirname: str) -> str:
    """A job's folder inside a sweep: its overrides, so a re-run maps to the same folder.

    Long names are cut and made unique with a hash of the whole (file names stop at 255).
    """
    name = override_dirname.replace("/", "_") or "default"
    if len(name) <= MAX_DIR_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_DIR_NAME - 11]}-{digest}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("job_dir"):
        OmegaConf.register_new_resolver("job_dir", job_dir_name)


class SweepSummary(Callback):
    """After a multirun: one screen listing each job's outcome; non-zero exit if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results = sorted(sweep_dir.glob(f"*/{RESULTS_FILE}"))
        failed = []
        for path in results:
            outcome = read_results(path)
            if outcome.get("status") != "completed":
                failed.append((path.parent.name, outcome.get("error", "?")))
        log.info(
            "sweep %s: %d jobs with results, %d completed, %d failed",
            sweep_dir, len(results), len(results) - len(failed), len(failed),
        )
        for name, error in failed:
            log.error("  failed: %s: %s", name, error.splitlines()[0][:200])
        if failed:
            raise SystemExit(1)
