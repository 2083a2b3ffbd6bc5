"""mCE (Hendrycks & Dietterich 2019): a variant's errors under each corruption relative to
its baseline's, so that the corruptions every network finds hard do not decide the mean.

Written out here: no library computes it from the corruptions evaluation's numbers."""

from __future__ import annotations

import numpy as np

from downsample_study.report.comparisons import find_baseline, is_baseline
from downsample_study.report.contents import Report
from downsample_study.report.variants import Variant
from downsample_study.sweeps.folder import JobFolder

Cells = dict[tuple[str, int], float]  # (corruption, severity) → top-1 error


def _errors(job: JobFolder) -> tuple[float, Cells] | None:
    """A seed's clean error and its error at each corruption and severity."""
    details = (job.results.evaluations.get("corruptions") or {}).get("details") or {}
    if details.get("clean_error") is None or not details.get("errors"):
        return None
    return details["clean_error"], {
        (corruption, severity): error for corruption, errors in details["errors"].items()
        for severity, error in zip(details["severities"], errors, strict=True)}


def mce_baselines(report: Report, variants: list[Variant]) -> dict[int, Variant | None]:
    """Each variant's (by id) baseline for mCE: of the report's first kind of baseline, itself
    where it is one; None where there is none or it measured no corruptions."""
    spec = report.baselines[0] if report.baselines else None
    found: dict[int, Variant | None] = {}
    for v in variants:
        b = None
        if spec is not None:
            b = v if is_baseline(v, spec) else find_baseline(v, report.variants, spec)
        found[id(v)] = b if b is not None and any(_errors(job) for job in b.jobs) else None
    return found


def _mean_errors(baseline: Variant) -> tuple[float, Cells]:
    """The baseline's clean error and each cell's error, means over its seeds."""
    seeds = [found for job in baseline.jobs if (found := _errors(job))]
    cells: dict[tuple[str, int], list[float]] = {}
    for _, errors in seeds:
        for cell, error in errors.items():
            cells.setdefault(cell, []).append(error)
    return (float(np.mean([clean for clean, _ in seeds])),
            {cell: float(np.mean(errors)) for cell, errors in cells.items()})


def _mean_ratio(numerators: dict[str, float], denominators: dict[str, float]) -> float | None:
    """The mean over corruptions of the ratios, in percent; None if a denominator is ≤ 0."""
    if not numerators or min(denominators.values()) <= 0:
        return None
    return 100 * float(np.mean([numerators[c] / denominators[c] for c in numerators]))


def mces(v: Variant, baseline: Variant | None) -> tuple[dict[int, float], dict[int, float]]:
    """seed → mCE and seed → relative mCE of ``v`` against ``baseline`` (percent), over the
    corruptions and severities both measured: CE_c = Σ_s E_s,c / Σ_s E^baseline_s,c, the
    relative one with E − E_clean. Empty without a baseline, or where undefined."""
    if baseline is None:
        return {}, {}
    base_clean, base = _mean_errors(baseline)
    mce, relative = {}, {}
    for job in v.jobs:
        if (found := _errors(job)) is None:
            continue
        clean, errors = found
        shared = [cell for cell in errors if cell in base]
        sums: dict[str, list[float]] = {}
        for corruption, severity in shared:
            cell = (corruption, severity)
            total = sums.setdefault(corruption, [0.0, 0.0, 0.0, 0.0])
            for at, value in enumerate((errors[cell], base[cell], errors[cell] - clean,
                                        base[cell] - base_clean)):
                total[at] += value
        if (ce := _mean_ratio({c: t[0] for c, t in sums.items()},
                              {c: t[1] for c, t in sums.items()})) is not None:
            mce[job.seed] = ce
        if (ce := _mean_ratio({c: t[2] for c, t in sums.items()},
                              {c: t[3] for c, t in sums.items()})) is not None:
            relative[job.seed] = ce
    return mce, relative
