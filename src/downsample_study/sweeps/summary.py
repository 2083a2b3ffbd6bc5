"""The end of a multirun: one screen listing each job's outcome; non-zero exit if any failed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from downsample_study.errors import ResultsError
from downsample_study.results import RESULTS_FILE, read_results

log = logging.getLogger("downsample_study")

MAX_LISTED_FAILURES = 20  # the summary stays on one screen


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        paths = sorted(sweep_dir.glob(f"*/{RESULTS_FILE}"))
        failed = []
        for path in paths:
            try:
                outcome = read_results(path)
            except ResultsError as err:
                failed.append((path.parent.name, str(err)))
                continue
            if not outcome.completed:
                failed.append((path.parent.name, outcome.error or "?"))
        log.info(
            "sweep %s: %d jobs with results, %d completed, %d failed",
            sweep_dir, len(paths), len(paths) - len(failed), len(failed),
        )
        for name, error in failed[:MAX_LISTED_FAILURES]:
            log.error("  failed: %s: %s", name, (error.splitlines() or ["?"])[0][:200])
        if len(failed) > MAX_LISTED_FAILURES:
            log.error("  ... and %d more (status: failed in their results.json)",
                      len(failed) - MAX_LISTED_FAILURES)
        if failed:
            raise SystemExit(1)
