"""Every comparison in one forest plot: a panel per dataset and kind of baseline, the
equivalence margin shaded, each verdict as its marker's colour."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from downsample_study.console import counted
from downsample_study.report.comparisons import Comparison
from downsample_study.report.contents import Report
from downsample_study.report.plots import distinct_labels, save
from downsample_study.report.statistics import CONFIDENCE
from downsample_study.report.variants import text

VERDICT_COLORS = {"better": "tab:green", "worse": "tab:red", "equivalent": "tab:blue",
                  "inconclusive": "0.45", "no test": "0.75"}


def _panels(report: Report) -> dict[str, dict[str, list[Comparison]]]:
    """The comparisons by baseline, then dataset; each panel largest difference first."""
    found: dict[str, dict[str, list[Comparison]]] = defaultdict(lambda: defaultdict(list))
    for c in report.comparisons:
        baseline = ", ".join(f"{k}={v}" for k, v in c.spec.items())
        found[baseline][text(c.variant.flat.get("dataset.name"))].append(c)
    return {baseline: {dataset: sorted(cs, key=lambda c: -c.diff)
                       for dataset, cs in datasets.items()}
            for baseline, datasets in found.items()}


def plot_differences(report: Report, path: Path) -> bool:
    """Draw the figure at ``path`` (and its SVG); False when there is no comparison."""
    panels = _panels(report)
    if not panels:
        return False
    heights = [max(len(cs) for cs in datasets.values()) for datasets in panels.values()]
    columns = max(len(datasets) for datasets in panels.values())
    longest = max(len(label) for datasets in panels.values() for cs in datasets.values()
                  for label in distinct_labels([c.variant for c in cs]))
    margin = report.comparisons[0].margin
    fig = Figure(figsize=(max(7.0, (3.4 + 0.07 * longest) * columns), 1.6 + 0.3 * sum(heights)
                          + 0.7 * len(panels)), layout="constrained")
    parts = fig.subfigures(len(panels), 1, squeeze=False,
                           height_ratios=[h + 2.5 for h in heights])[:, 0]
    for part, (baseline, datasets) in zip(parts, panels.items(), strict=True):
        axes = part.subplots(1, columns, squeeze=False)[0]
        for ax, (dataset, cs) in zip(axes, datasets.items()):
            _draw(ax, cs, margin)
            ax.set_title(f"{dataset}, vs {baseline}", fontsize=9)
        for ax in axes[len(datasets):]:
            ax.set_axis_off()
    shown = {c.outcome for c in report.comparisons}
    handles = [Line2D([], [], marker="o", color=color, lw=1.6, label=kind)
               for kind, color in VERDICT_COLORS.items() if kind in shown]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)
    family = counted(report.comparisons[0].family, "comparison")
    fig.suptitle(f"Test top-1 difference to the baseline (pp), unadjusted {CONFIDENCE:.0%} CI\n"
                 f"colour: the verdict (Holm over {family}); "
                 f"shaded: the equivalence margin, ±{margin:g} pp", fontsize=9)
    save(fig, path)
    return True


def _draw(ax, comparisons: list[Comparison], margin: float) -> None:
    if not math.isnan(margin):
        ax.axvspan(-margin, margin, color="tab:blue", alpha=0.12, lw=0)
    ax.axvline(0, color="0.3", lw=0.8)
    for y, c in enumerate(comparisons):
        color = VERDICT_COLORS[c.outcome]
        if not math.isnan(c.low):
            ax.plot([c.low, c.high], [y, y], color=color, lw=1.6)
        ax.plot(c.diff, y, "o", color=color, markersize=5)
    ax.set_yticks(range(len(comparisons)), distinct_labels([c.variant for c in comparisons]),
                  fontsize=8)
    ax.set_ylim(len(comparisons) - 0.5, -0.5)
    ax.set_xlabel("difference (pp)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
