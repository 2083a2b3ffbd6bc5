"""The evaluations' plots: accuracy at every shift as a heat map per variant, clean accuracy
against robustness (worst-case shift, mCE), and accuracy under attack against the budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from downsample_study.evaluations.configs import ShiftFill
from downsample_study.layout import PLOTS
from downsample_study.report.contents import Report
from downsample_study.report.corruption_error import mce_baselines, mces
from downsample_study.report.evaluation_sections import measured, stat, summary_keys
from downsample_study.report.plots import (
    SMALL_MULTIPLES,
    distinct_labels,
    label_colors,
    named_points,
    save,
    spread_labels,
)
from downsample_study.report.statistics import CONFIDENCE, Stat
from downsample_study.report.summaries import kind
from downsample_study.report.variants import Variant, by_dataset

COLUMNS = 6  # heat maps per row


def draw_evaluation_plots(report: Report) -> list[Path]:
    """Every such plot the sweep has the numbers for, as the paths of their PNGs."""
    drawn = []
    for mode in map(str, ShiftFill):
        if plot_shift_grid(report, mode, report.sweep / PLOTS[f"shift_grid_{mode}"]):
            drawn.append(report.sweep / PLOTS[f"shift_grid_{mode}"])
    for name, plot in (("tradeoffs", plot_tradeoffs), ("attacks", plot_attacks)):
        if plot(report, report.sweep / PLOTS[name]):
            drawn.append(report.sweep / PLOTS[name])
    return drawn


def mean_grid(v: Variant, mode: str) -> np.ndarray | None:
    """The variant's accuracy (%) at each offset, row dy + r and column dx + r: the mean over
    the seeds that measured it in ``mode`` (at its first seed's radius)."""
    grids = [np.asarray(grid["accuracy"], dtype=float) for job in v.jobs
             if (grid := ((job.results.evaluations.get("shift_grid") or {}).get("details")
                          or {}).get(mode))]
    grids = [grid for grid in grids if grid.shape == grids[0].shape]
    return 100 * np.mean(grids, axis=0) if grids else None


def plot_shift_grid(report: Report, mode: str, path: Path) -> bool:
    """A heat map per variant of its accuracy at each offset (dy, dx) in ``mode``, one colour
    scale per dataset; False when no variant measured the mode."""
    datasets = {d: [(v, grid) for v in vs if (grid := mean_grid(v, mode)) is not None]
                for d, vs in by_dataset(report.variants).items()}
    datasets = {d: found for d, found in datasets.items() if found}
    if not datasets:
        return False
    columns = min(COLUMNS, max(len(found) for found in datasets.values()))
    heights = [-(-len(found) // columns) for found in datasets.values()]
    fig = Figure(figsize=(2.3 * columns + 1.2, 2.3 * sum(heights) + 0.6 * len(datasets)),
                 layout="constrained")
    parts = fig.subfigures(len(datasets), 1, squeeze=False, height_ratios=heights)[:, 0]
    for part, rows, (dataset, found) in zip(parts, heights, datasets.items(), strict=True):
        grid = part.subplots(rows, columns, squeeze=False)
        low = min(float(g.min()) for _, g in found)
        high = max(float(g.max()) for _, g in found)
        labels = distinct_labels([v for v, _ in found])
        for i, ((v, accuracy), label) in enumerate(zip(found, labels, strict=True)):
            ax = grid[i // columns, i % columns]
            r = accuracy.shape[0] // 2
            image = ax.imshow(accuracy, cmap="viridis", vmin=low, vmax=high,
                              extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5))
            ax.set_title(f"{label} (n = {len(v.jobs)})", fontsize=7)
            ax.tick_params(labelsize=6)
            for axis in (ax.xaxis, ax.yaxis):  # offsets are whole pixels
                axis.set_major_locator(MaxNLocator(integer=True))
        for i in range(len(found), rows * columns):
            grid[i // columns, i % columns].set_axis_off()
        part.colorbar(image, ax=grid, shrink=0.8, label="top-1 accuracy (%)")
        part.suptitle(f"{dataset}: top-1 (%) at each shift (dx right, dy down), {mode} fill, "
                      f"mean over seeds", fontsize=9)
    save(fig, path)
    return True


def _corruption_measure(report: Report) -> tuple[str, dict[int, Stat]]:
    """Each variant's mCE (%) where the report has baselines that measured corruptions,
    else its unnormalised mean error (%), and the axis label that says which."""
    shown = measured(report.variants, "corruptions")
    baselines = mce_baselines(report, shown)
    if any(baselines.values()):
        found = {id(v): Stat.of(list(m.values())) for v in shown
                 if (m := mces(v, baselines[id(v)])[0])}
        return "mCE (%, 100: the baseline's)", found
    found = {id(v): s for v in shown if (s := stat(v, "corruptions", "mean_error"))}
    return "mean corruption error (%, unnormalised: no baseline)", found


def plot_tradeoffs(report: Report, path: Path) -> bool:
    """Test top-1 against the worst-case shift accuracy and against mCE: a row each, a column
    per dataset; False when the sweep measured neither."""
    measures = []
    worst = kind("shift_grid").headline(summary_keys(report.variants, "shift_grid"))
    if worst:
        measures.append((f"worst-case shift accuracy (%, {worst})", {
            id(v): s for v in report.variants if (s := stat(v, "shift_grid", worst))}))
    if measured(report.variants, "corruptions"):
        measures.append(_corruption_measure(report))
    measures = [(label, found) for label, found in measures if found]
    if not measures:
        return False
    datasets = by_dataset(report.variants)
    crowded = max(len(vs) for vs in datasets.values()) > SMALL_MULTIPLES
    colors = label_colors(report)
    fig = Figure(figsize=((8.0 if crowded else 5.0) * len(datasets), 3.8 * len(measures)),
                 layout="constrained")
    axes = fig.subplots(len(measures), len(datasets), squeeze=False)
    names = []
    for row, (label, found) in zip(axes, measures, strict=True):
        for ax, (dataset, variants) in zip(row, datasets.items(), strict=True):
            shown = [v for v in variants if id(v) in found]
            if not shown:
                ax.set_axis_off()
                continue
            names += named_points(ax, shown, lambda v, found=found: found[id(v)], colors,
                                  crowded)
            ax.set_xlabel(label)
            ax.set_title(f"{dataset}: mean and {CONFIDENCE:.0%} CI", fontsize=9)
    spread_labels(fig, names)
    save(fig, path)
    return True


def _budgets(keys: list[str], attack: str) -> list[tuple[float, str]]:
    """(ε in 1/255, key) of ``attack``'s summary keys, smallest first."""
    found = []
    for key in keys:
        if key.startswith(f"{attack}_eps"):
            try:
                found.append((float(key.removeprefix(f"{attack}_eps")), key))
            except ValueError:
                continue
    return sorted(found)


def plot_attacks(report: Report, path: Path) -> bool:
    """Top-1 under FGSM (dashed) and PGD (solid) against ε, the clean accuracy at ε = 0; a
    panel per dataset. False when no variant was attacked."""
    attacked = measured(report.variants, "attacks")
    if not attacked:
        return False
    keys = summary_keys(attacked, "attacks")
    datasets = by_dataset(attacked)
    crowded = max(len(vs) for vs in datasets.values()) > SMALL_MULTIPLES
    colors = label_colors(report)
    fig = Figure(figsize=((8.0 if crowded else 5.0) * len(datasets), 3.8),
                 layout="constrained")
    for ax, (dataset, variants) in zip(fig.subplots(1, len(datasets), squeeze=False)[0],
                                       datasets.items(), strict=True):
        for v, label in zip(variants, distinct_labels(variants), strict=True):
            clean = stat(v, "attacks", "clean")
            for attack, style in (("pgd", "-"), ("fgsm", "--")):
                points = [(eps, s.mean) for eps, key in _budgets(keys, attack)
                          if (s := stat(v, "attacks", key))]
                if clean:
                    points.insert(0, (0.0, clean.mean))
                if points:
                    ax.plot(*zip(*points, strict=True), style, marker=".",
                            color=colors[v.label], label=label if attack == "pgd" else None)
        ax.set_xlabel("ε (1/255 of the pixel range)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{dataset}: under attack, mean over seeds (solid: PGD, dashed: FGSM)",
                     fontsize=9)
        ax.grid(alpha=0.3)
        if crowded:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        else:
            ax.legend(fontsize=7)
    save(fig, path)
    return True
