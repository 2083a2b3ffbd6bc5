"""Whether training was long enough: per dataset, where the selected checkpoints fell and
what validation accuracy still gained over the last quarter of the epochs."""

from __future__ import annotations

import math

import numpy as np

from downsample_study.report.comparisons import pp
from downsample_study.report.contents import Report
from downsample_study.report.variants import Variant, by_dataset


def _curve(job) -> dict[int, float]:
    return {int(row["epoch"]): 100 * float(row["val/acc_top1"]) for row in job.epochs
            if row.get("val/acc_top1") not in (None, "")}


def _late_gain(v: Variant) -> tuple[float, int, int] | None:
    """Mean over seeds of the rise in validation top-1 (pp) over the last quarter of the
    epochs, and that stretch's first and last epoch."""
    gains, stretch = [], None
    for job in v.jobs:
        curve = _curve(job)
        if len(curve) < 4:
            continue
        last = max(curve)
        earlier = [e for e in curve if e <= last - max(1, last // 4)]  # validated epochs only
        if earlier:
            first = max(earlier)
            gains.append(curve[last] - curve[first])
            stretch = (first, last)
    return (float(np.mean(gains)), *stretch) if gains else None


def _span(values: list[float], digits: int = 0) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if math.isclose(low, high) else f"{low:.{digits}f}–{high:.{digits}f}"


def plateau_section(report: Report) -> list[str]:
    lines = []
    for dataset, variants in by_dataset(report.variants).items():
        gains = {v.label: g for v in variants if (g := _late_gain(v)) is not None}
        epochs = [e for v in variants for e in v.values("epochs", scale=1.0).values()]
        best = [s.mean for v in variants if (s := v.stat("best_epoch", scale=1.0))]
        if not gains or not epochs:
            continue
        label, (gain, first, last) = max(gains.items(), key=lambda item: item[1][0])
        sentence = f"- **{dataset}**: {_span(epochs)} epochs"
        if best:
            sentence += (f"; the selected checkpoints' epoch {_span(best, 1)} (mean over seeds, "
                         f"by variant)")
        median = float(np.median([g[0] for g in gains.values()]))
        lines.append(f"{sentence}; from epoch {first} to {last} validation top-1 changed by "
                     f"{pp(median)} pp in the median variant and by at most {pp(gain)} pp "
                     f"(mean over seeds; {label}).")
    if not lines:
        return []
    return ["", "## Training length", "",
            "Whether validation accuracy had levelled off: where each variant's selected "
            "checkpoint fell, and what the last quarter of the epochs still added (the "
            "curves: the plots below).", "", *lines]
