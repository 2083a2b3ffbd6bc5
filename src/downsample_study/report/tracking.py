"""The report in W&B: its tables and plots as a ``report`` run in the sweep's group, its files
as a ``report`` artifact (a new version each time)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from downsample_study.layout import COMPARISONS_FILE, LATEX_FILE, REPORT_FILE, TABLE_FILE
from downsample_study.report.contents import Report
from downsample_study.report.tables import comparison_rows, variant_rows
from downsample_study.results import Status


def log_to_wandb(report: Report, plots: list[Path]) -> str | None:
    """Log the tables and plots as a ``report`` run where the jobs logged (their W&B project,
    group and mode, as ``results.json`` records them); None when they did not use W&B."""
    job = next((j for j in report.jobs if j.status == Status.completed), None)
    if job is None:
        return None
    trackers = job.results.trackers
    if trackers is None:  # written before results.json named its trackers
        trackers = [_as_recorded(job.results.config.get("logger") or {})]
    tracker = next((t for t in trackers if t.get("name") == "wandb"), None)
    if tracker is None or tracker.get("mode") == "disabled":
        return None
    mode = tracker["mode"]
    import wandb

    run = wandb.init(
        project=tracker.get("project"), entity=tracker.get("entity"),
        group=tracker.get("group") or job.results.group, job_type="report",
        name=f"report {report.sweep.name}", dir=str(report.sweep), mode=mode,
        config={"sweep": str(report.sweep), "baselines": report.baselines},
        settings=wandb.Settings(silent=True, console="off", init_timeout=60),
    )
    try:
        logged: dict[str, Any] = {}
        for key, rows in (("report/variants", variant_rows(report)),
                          ("report/comparisons", comparison_rows(report))):
            if rows:
                columns = list(dict.fromkeys(k for row in rows for k in row))
                logged[key] = wandb.Table(columns=columns,
                                          data=[[row.get(c) for c in columns] for row in rows])
        for plot in plots:
            logged[f"report/{plot.stem}"] = wandb.Image(str(plot))
        run.log(logged)
        run.log_artifact(_artifact(wandb, report, plots, run.group))
        where = (f"offline in {Path(run.dir).parent} (upload: wandb sync {Path(run.dir).parent})"
                 if mode == "offline" else run.url)
    finally:
        run.finish()
        wandb.teardown()  # the run's files are complete when the report returns
    return where


def _as_recorded(logger: dict[str, Any]) -> dict[str, Any]:
    """What ``results.json`` says of its tracker since version 5, from the logger node of an
    earlier one's config (one logger, its name a key of the node): offline unless the node
    says otherwise."""
    mode = logger.get("mode")
    return {"name": logger.get("name"), "entity": logger.get("entity"),
            "mode": mode if mode in ("online", "offline", "disabled") else (
                os.environ.get("WANDB_MODE") or "offline"),
            "project": logger.get("project") or os.environ.get("WANDB_PROJECT")
            or "downsample_study", "group": logger.get("group")}


def _artifact(wandb: Any, report: Report, plots: list[Path], group: str) -> Any:
    """The report's files; named by the sweep's group (letters, digits, ``-_.`` only)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"report-{group or report.sweep.name}")
    artifact = wandb.Artifact(name, type="report", description=f"report of {report.sweep}")
    files = (REPORT_FILE, TABLE_FILE, COMPARISONS_FILE, LATEX_FILE)
    for path in [report.sweep / f for f in files] + [
            p for plot in plots for p in (plot, plot.with_suffix(".svg"))]:
        if path.is_file():
            artifact.add_file(str(path))
    return artifact
