"""The report's plots: accuracy per variant (mean, CI and every seed), accuracy against
parameters and against shift consistency, and validation accuracy per epoch (every
comparison: ``differences.py``; the evaluations': ``evaluation_plots.py``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator, StrMethodFormatter
from matplotlib.transforms import Bbox

from downsample_study.nets.downsample_base import Family
from downsample_study.report.contents import Report
from downsample_study.report.statistics import CONFIDENCE, Stat
from downsample_study.report.summaries import path as summary_path
from downsample_study.report.variants import Variant, by_dataset
from downsample_study.storage import atomic_write

SMALL_MULTIPLES = 6  # more variants than this in a dataset: one panel each, shared axes
log = logging.getLogger("downsample_study.report")



def save(fig: Figure, path: Path) -> None:
    """PNG for reading, SVG beside it for papers (vector, any size); the SVG without a date
    and with fixed ids, so the same report writes the same file."""
    import matplotlib

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=150)
    with (matplotlib.rc_context({"svg.hashsalt": "downsample_study"}),
          atomic_write(path.with_suffix(".svg"), "wb") as f):
        fig.savefig(f, format="svg", metadata={"Date": None})
    log.info("plot: %s (and .svg)", path.name)  # a few seconds each: the report's progress


def label_colors(report: Report) -> dict[str, Any]:
    """One colour per label, the same in every panel. Where the operators' families differ,
    one hue per family and shades of it for its labels; else up to ten hues, and past ten
    tab20's pairs of a hue, so labels that sort together (BatchNorm off and on) get two
    shades of one hue."""
    labels = sorted({v.label for v in report.variants})
    family = {v.label: v.family for v in report.variants}
    families = [f.value for f in Family if f.value in family.values()]
    if len(families) > 1:
        colors = {}
        for hue, name in enumerate(families):
            members = [label for label in labels if family[label] == name]
            base = np.array(to_rgb(f"C{hue % 10}"))
            for i, label in enumerate(members):  # darkest first, towards white
                colors[label] = tuple(base + (1 - base) * 0.6 * i / max(len(members), 2))
        return colors
    if len(labels) <= 10:
        return {label: f"C{i}" for i, label in enumerate(labels)}
    palette = colormaps["tab20"]
    return {label: palette(i % palette.N) for i, label in enumerate(labels)}


def _panels(count: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * count, height), layout="constrained")
    return fig, fig.subplots(1, count, squeeze=False)[0]


def plot_accuracy(report: Report, path: Path) -> None:
    datasets = by_dataset(report.variants)
    rows = max(len(vs) for vs in datasets.values())
    longest = max(len(v.label) for v in report.variants)
    fig, axes = _panels(len(datasets), 3.5 + 0.075 * longest, 1.2 + 0.45 * rows)
    baselines = report.first_baselines
    for ax, (dataset, variants) in zip(axes, datasets.items()):
        labels = distinct_labels(variants)
        for y, v in enumerate(variants):
            s = v.stat("test", "acc_top1")
            color = "C1" if id(v) in baselines else "C0"
            if s.n >= 2:
                ax.errorbar(s.mean, y, xerr=[[s.mean - s.low], [s.high - s.mean]], fmt="o",
                            color=color, capsize=4)
            ax.plot(list(v.values("test", "acc_top1").values()), [y] * len(v.jobs), "x",
                    color="0.45", markersize=5)
            ax.plot(s.mean, y, "o", color=color)
            if id(v) in baselines:
                labels[y] += " (baseline)"
        ax.set_yticks(range(len(variants)), labels, fontsize=8)
        for tick, v in zip(ax.get_yticklabels(), variants, strict=True):
            if id(v) in baselines:
                tick.set_color("C1")
        ax.invert_yaxis()
        ax.set_xlabel("test top-1 accuracy (%)")
        ax.set_title(f"{dataset}: mean and {CONFIDENCE:.0%} CI (×: seeds)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    save(fig, path)


def interval(s) -> list[list[float]] | None:
    """An errorbar's extent for a ``Stat``'s confidence interval (none from one seed)."""
    return [[s.mean - s.low], [s.high - s.mean]] if s.n >= 2 else None


def _legend(ax, crowded: bool) -> None:
    if crowded:  # beside the axes, not over the points
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    else:
        ax.legend(fontsize=7)


def plot_accuracy_vs_params(report: Report, path: Path) -> None:
    datasets = by_dataset(report.variants)
    crowded = max(len(vs) for vs in datasets.values()) > SMALL_MULTIPLES
    colors = label_colors(report)
    fig, axes = _panels(len(datasets), 8.0 if crowded else 5.0, 3.8)
    for ax, (dataset, variants) in zip(axes, datasets.items()):
        params = [v.params for v in variants]
        # variants with equal parameter counts are drawn side by side, not on top of each
        # other; where every count is the same, one tick says so
        span = max(params) - min(params)
        dodge = 0.015 * span if span else 1.0
        for i, (v, label) in enumerate(zip(variants, distinct_labels(variants), strict=True)):
            s = v.stat("test", "acc_top1")
            same = [j for j, p in enumerate(params) if p == v.params]
            x = v.params + (same.index(i) - (len(same) - 1) / 2) * dodge
            ax.errorbar(x, s.mean, yerr=interval(s), fmt="o", color=colors[v.label],
                        capsize=4, label=f"{label} ({v.params:,})")
        if not span:
            ax.set_xticks([params[0]])
        ax.set_xlabel("parameters")
        ax.set_ylabel("test top-1 accuracy (%)")
        ax.set_title(f"{dataset}: accuracy vs parameters", fontsize=9)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.grid(alpha=0.3)
        _legend(ax, crowded)
    save(fig, path)


def plot_accuracy_vs_shift(report: Report, path: Path) -> bool:
    """Test top-1 against shift consistency (zero fill), Zhang 2019's trade-off: a low-pass
    operator moves right at no cost in height. False when no variant measured shift."""
    consistency = summary_path("shift", "consistency_zero")
    shifted = [v for v in report.variants if v.stat(*consistency)]
    if not shifted:
        return False
    datasets = by_dataset(shifted)
    most = max(len(vs) for vs in datasets.values())
    crowded = most > SMALL_MULTIPLES
    colors = label_colors(report)
    k = shifted[0].details("shift").get("max")
    fig, axes = _panels(len(datasets), 10.0 if crowded else 5.0, max(3.8, 0.3 * most))
    names = []
    for ax, (dataset, variants) in zip(axes, datasets.items()):
        names += named_points(ax, variants, lambda v: v.stat(*consistency), colors, crowded)
        ax.set_xlabel(f"shift consistency (%), random shifts of up to ±{k} px")
        ax.set_title(f"{dataset}: accuracy vs shift consistency, mean and {CONFIDENCE:.0%} CI",
                     fontsize=9)
        _legend(ax, crowded)
    spread_labels(fig, names)
    save(fig, path)
    return True


def named_points(ax, variants: list[Variant], x: Callable[[Variant], Stat],
                 colors: dict[str, Any], crowded: bool) -> list[Annotation]:
    """Each variant at (``x``, test top-1), means and CIs, named beside its point (20 colours
    are hard to match), on the left of a point in the right 30 % of the range."""
    xs = [x(v).mean for v in variants]
    right = min(xs) + 0.7 * (max(xs) - min(xs))
    names = []
    for v, label in zip(variants, distinct_labels(variants), strict=True):
        top1, at = v.stat("test", "acc_top1"), x(v)
        ax.errorbar(at.mean, top1.mean, xerr=interval(at), yerr=interval(top1), fmt="o",
                    color=colors[v.label], capsize=3, label=label)
        left = at.mean > right
        names.append(ax.annotate(
            label, (at.mean, top1.mean), xytext=(-4 if left else 4, 3),
            textcoords="offset points", ha="right" if left else "left",
            fontsize=6 if crowded else 7, color="0.25"))
    ax.margins(x=0.15)
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    return names


def _curve(v: Variant) -> tuple[list[int], np.ndarray, np.ndarray]:
    """A variant's validation top-1 per epoch: mean over seeds and their std."""
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for job in v.jobs:
        for row in job.epochs:
            if "val/acc_top1" in row:
                per_epoch[int(row["epoch"])].append(100 * row["val/acc_top1"])
    epochs = sorted(per_epoch)
    mean = np.array([np.mean(per_epoch[e]) for e in epochs])
    std = np.array([np.std(per_epoch[e], ddof=1) if len(per_epoch[e]) > 1 else 0.0 for e in epochs])
    return epochs, mean, std


def _draw(ax, v: Variant, color: str, label: str) -> None:
    epochs, mean, std = _curve(v)
    ax.plot(epochs, mean, marker=".", color=color, label=label)
    ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def plot_curves(report: Report, path: Path) -> bool:
    """Validation top-1 per epoch: the mean over seeds, with a ±1 std band. A dataset with
    more than ``SMALL_MULTIPLES`` variants gets one panel per variant (axes shared within
    the dataset, its best variant in grey behind each) instead of one crowded panel."""
    datasets = {d: [v for v in vs if any(job.epochs for job in v.jobs)]
                for d, vs in by_dataset(report.variants).items()}
    datasets = {d: vs for d, vs in datasets.items() if vs}
    if not datasets:
        return False
    if max(len(vs) for vs in datasets.values()) <= SMALL_MULTIPLES:
        colors = label_colors(report)
        fig, axes = _panels(len(datasets), 5.0, 3.8)
        for ax, (dataset, variants) in zip(axes, datasets.items()):
            for v in variants:
                _draw(ax, v, colors[v.label], f"{v.label} (n = {len(v.jobs)})")
            ax.set_xlabel("epochs trained")
            ax.set_ylabel("validation top-1 accuracy (%)")
            ax.set_title(f"{dataset}: mean over seeds, band ±1 std", fontsize=9)
            ax.legend(fontsize=7)
        save(fig, path)
        return True
    columns = min(5, max(len(vs) for vs in datasets.values()))
    heights = [-(-len(vs) // columns) for vs in datasets.values()]
    fig = Figure(figsize=(2.6 * columns, 2.2 * sum(heights) + 0.5 * len(datasets)),
                 layout="constrained")
    parts = fig.subfigures(len(datasets), 1, squeeze=False, height_ratios=heights)[:, 0]
    for part, rows, (dataset, variants) in zip(parts, heights, datasets.items(), strict=True):
        grid = part.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        best = variants[0]  # variants come best first
        for i, (v, title) in enumerate(zip(variants, distinct_labels(variants), strict=True)):
            ax = grid[i // columns, i % columns]
            if v is not best:
                _draw(ax, best, "0.7", "")
            _draw(ax, v, "C0", "")
            ax.set_title(f"{title} (n = {len(v.jobs)})", fontsize=7)
        for i in range(len(variants), rows * columns):
            grid[i // columns, i % columns].set_axis_off()
        part.suptitle(f"{dataset}: validation top-1 (%) per epoch, mean over seeds, band ±1 std; "
                      f"grey: its best variant, {distinct_labels(variants)[0]}", fontsize=9)
    fig.supxlabel("epochs trained", fontsize=9)
    save(fig, path)
    return True


def distinct_labels(variants: list[Variant]) -> list[str]:
    """Each label without the parts every variant shares (``lenet5 · ``)."""
    parts = [v.label.split(" · ") for v in variants]
    common = set.intersection(*map(set, parts)) if len(parts) > 1 else set()
    return [" · ".join(p for p in label if p not in common) or " · ".join(label) for label in parts]


LEADER = {"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 0, "shrinkB": 3}


def spread_labels(fig: Figure, labels: list[Annotation]) -> list[Annotation]:
    """``labels`` (annotations in offset points) lifted apart where they overlap; returns them
    as drawn (a lifted one is replaced by a copy with a leader line)."""
    for label in labels:
        label.set_in_layout(False)  # moving them then leaves the axes, and the points, in place
    fig.draw_without_rendering()  # the layout, so the labels' extents are final
    placed: list[Bbox] = []
    drawn = []
    for label in sorted(labels, key=lambda a: (a.xy[1], a.xy[0])):
        # with room to spare: text is a little wider and taller, for its size, in the SVG
        # (72 dpi) and the PNG (150 dpi) than at the figure's dpi it is placed at
        box = label.get_window_extent().expanded(1.1, 1.3)
        lift = 0.0
        while any(box.translated(0, lift).overlaps(other) for other in placed):
            lift += box.height / 2
        placed.append(box.translated(0, lift))
        if lift:
            dx, dy = label.xyann
            moved = label.axes.annotate(
                label.get_text(), label.xy, xytext=(dx, dy + lift * 72 / fig.dpi),
                textcoords="offset points", ha=label.get_horizontalalignment(),
                fontsize=label.get_fontsize(), color=label.get_color(), arrowprops=LEADER)
            moved.set_in_layout(False)
            label.remove()
            label = moved
        drawn.append(label)
    return drawn
