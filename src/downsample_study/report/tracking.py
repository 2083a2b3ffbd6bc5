"""The report in W&B: its tables and plots as a ``report`` run in the sweep's group, and its
files (report.md, the CSVs, PNG and SVG plots) as a ``report`` artifact, a version each time
the report is made again."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from downsample_study.config.validate import typed_node
from downsample_study.layout import COMPARISONS_FILE, REPORT_FILE, TABLE_FILE
from downsample_study.report.contents import Report
from downsample_study.report.tables import comparison_rows, variant_rows
from downsample_study.results import Status
from downsample_study.training.loggers import LOGGERS
from downsample_study.training.wandb_tracker import wandb_mode, wandb_project


def log_to_wandb(report: Report, plots: list[Path]) -> str | None:
    """Log the tables and plots as a ``report`` run in the jobs' W&B group; None when the
    jobs did not use W&B. Offline (into ``SWEEP/wandb``) when there are no credentials."""
    job = next((j for j in report.jobs if j.status == Status.completed), None)
    if job is None or job.results.config.get("logger", {}).get("name") != "wandb":
        return None
    cfg = typed_node(OmegaConf.create(job.results.config["logger"]), "logger", LOGGERS)
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(
        project=wandb_project(cfg), entity=cfg.entity, group=cfg.group or job.results.group,
        job_type="report", name=f"report {report.sweep.name}", dir=str(report.sweep), mode=mode,
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


def _artifact(wandb: Any, report: Report, plots: list[Path], group: str) -> Any:
    """The report's files; named by the sweep's group (letters, digits, ``-_.`` only)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"report-{group or report.sweep.name}")
    artifact = wandb.Artifact(name, type="report", description=f"report of {report.sweep}")
    for path in [report.sweep / f for f in (REPORT_FILE, TABLE_FILE, COMPARISONS_FILE)] + [
            p for plot in plots for p in (plot, plot.with_suffix(".svg"))]:
        if path.is_file():
            artifact.add_file(str(path))
    return artifact
