"""``build_report`` turns a sweep folder's jobs into variants and comparisons; ``write_report``
writes the report's files into the folder."""

from __future__ import annotations

import logging
from pathlib import Path

from downsample_study.console import counted
from downsample_study.errors import ReportError, not_a_folder
from downsample_study.layout import (
    COMPARISONS_FILE,
    LATEX_FILE,
    PLOTS,
    REPORT_FILE,
    RESULTS_FILE,
    TABLE_FILE,
    TUNING_PLOT,
)
from downsample_study.report.comparisons import compare_all, unmatched
from downsample_study.report.contents import Report
from downsample_study.report.differences import plot_differences
from downsample_study.report.evaluation_plots import draw_evaluation_plots
from downsample_study.report.evaluation_sections import headline_comparisons
from downsample_study.report.latex import latex_tables
from downsample_study.report.plots import (
    plot_accuracy,
    plot_accuracy_vs_params,
    plot_accuracy_vs_shift,
    plot_curves,
)
from downsample_study.report.tables import comparison_rows, markdown, variant_rows, write_csv
from downsample_study.report.tracking import log_to_wandb
from downsample_study.report.tuning import (
    Study,
    load_studies,
    plot_tuning,
    tuning_section,
)
from downsample_study.report.variants import group_variants, label_variants, shown_keys, text
from downsample_study.storage import atomic_write, remove_orphans
from downsample_study.sweeps.folder import SweepFolder, report_settings

log = logging.getLogger("downsample_study.report")


def build_report(sweep: Path, baselines: list[dict[str, str]] | None = None,
                 margin: float | None = None) -> Report:
    """``baselines`` and the equivalence ``margin`` (pp) default to the sweep's ``report.*``."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise ReportError(f"{sweep}: {not_a_folder(sweep)} (pass a sweep folder, e.g. "
                          f"multirun/<date>/<time>)")
    folder = SweepFolder(sweep)
    jobs = folder.jobs(never_started=True)
    if not jobs and not folder.studies():  # studies alone: hydra/sweeper=lr_search
        raise ReportError(f"{sweep}: no jobs found (no {RESULTS_FILE} and no .hydra folders)")
    variants, no_seed_completed = group_variants(jobs)
    keys = shown_keys(variants or no_seed_completed)
    label_variants([*variants, *no_seed_completed], keys)
    settings = report_settings(jobs)
    if baselines is None:
        baselines = [{k: text(v) for k, v in spec.items()} for spec in settings.baselines]
    else:  # asked for by name: a misspelt one is an error, not an empty section
        for spec in baselines:
            if (why := unmatched(spec, variants)) is not None:
                raise ReportError(f"baseline {why}")
    if margin is None:
        margin = settings.equivalence_margin
    comparisons = compare_all(variants, baselines, margin)
    return Report(sweep, jobs, variants, keys, baselines, comparisons, no_seed_completed,
                  headline_comparisons(variants, baselines, margin))


def write_report(sweep: Path, baselines: list[dict[str, str]] | None = None,
                 use_wandb: bool = True, margin: float | None = None,
                 draw_plots: bool = True) -> Report:
    """Build the report of ``sweep`` and write its files into it (the tables only, without
    ``draw_plots``: an earlier report's plots are then removed, as they would not match)."""
    report = build_report(sweep, baselines, margin)
    sweep = report.sweep
    remove_orphans(sweep)  # the temporary files of a report killed while it wrote them
    # written last: a report stopped on the way leaves none, not an earlier one beside new files
    (sweep / REPORT_FILE).unlink(missing_ok=True)
    studies = load_studies(sweep)
    log.info("%s: %s", sweep, ", ".join(counted(len(items), *nouns) for items, *nouns in (
        (report.jobs, "job"), (report.variants, "variant"), (report.comparisons, "comparison"),
        (studies, "learning-rate study", "learning-rate studies"))))
    plots = _draw_plots(report, studies) if draw_plots else []
    for name in (*PLOTS.values(), TUNING_PLOT):  # an earlier report's plot not drawn now
        if sweep / name not in plots:
            for stale in (sweep / name, (sweep / name).with_suffix(".svg")):
                stale.unlink(missing_ok=True)
    write_csv(sweep / TABLE_FILE, variant_rows(report))
    write_csv(sweep / COMPARISONS_FILE, comparison_rows(report))
    with atomic_write(sweep / LATEX_FILE) as f:
        f.write(latex_tables(report))
    with atomic_write(sweep / REPORT_FILE) as f:
        f.write(markdown(report, tuning_section(studies, plotted=sweep / TUNING_PLOT in plots,
                                                tested=bool(report.jobs))))
    if use_wandb and (where := log_to_wandb(report, plots)):
        log.info("W&B: report logged %s", where)
    return report


def _draw_plots(report: Report, studies: list[Study]) -> list[Path]:
    """Every plot the report has data for, as the paths of their PNGs (SVGs beside)."""
    sweep, plots = report.sweep, []
    if report.variants:
        plot_accuracy(report, sweep / PLOTS["accuracy"])
        plot_accuracy_vs_params(report, sweep / PLOTS["params"])
        plots = [sweep / PLOTS["accuracy"], sweep / PLOTS["params"]]
        if plot_differences(report, sweep / PLOTS["differences"]):
            plots.insert(0, sweep / PLOTS["differences"])
        if plot_accuracy_vs_shift(report, sweep / PLOTS["shift"]):
            plots.append(sweep / PLOTS["shift"])
        if plot_curves(report, sweep / PLOTS["curves"]):
            plots.append(sweep / PLOTS["curves"])
        plots += draw_evaluation_plots(report)
    if studies:
        plot_tuning(studies, sweep / TUNING_PLOT)
        plots.append(sweep / TUNING_PLOT)
    return plots
