"""The report's tables: ``results.csv`` (one row per variant), ``comparisons.csv`` (each
variant against each of its baselines) and ``report.md``."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import Any

from downsample_study.console import counted
from downsample_study.evaluations.configs import ShiftFill
from downsample_study.layout import COMPARISONS_FILE, PLOTS, RESULTS_FILE, TABLE_FILE
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.report.comparisons import unmatched
from downsample_study.report.contents import Report
from downsample_study.report.evaluation_sections import evaluation_columns, evaluation_sections
from downsample_study.report.glance import glance, variants_glance
from downsample_study.report.plateau import plateau_section
from downsample_study.report.statistics import ALPHA, CONFIDENCE
from downsample_study.report.summaries import path as summary_path
from downsample_study.report.variants import Variant, column, text
from downsample_study.results import Status
from downsample_study.storage import atomic_write
from downsample_study.sweeps.folder import NEVER_STARTED, JobFolder

# (results.csv's name, the shift evaluation's summary key, report.md's title)
SHIFT_COLUMNS = [(f"{mode}_{key}", f"{'acc' if key == 'acc_top1' else key}_{mode}",
                  f"shift {'top-1' if key == 'acc_top1' else key} ({mode})")
                 for mode in map(str, ShiftFill) for key in ("acc_top1", "consistency")]


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (no spread, no test) as an empty cell, so every column keeps one type."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def variant_rows(report: Report) -> list[dict[str, Any]]:
    """``results.csv``: one row per variant; the comparison with the first baseline."""
    first = {id(c.variant): c for c in report.comparisons if c.spec == report.baselines[0]}
    rows = []
    for v in report.variants:
        row = {column(k): text(v.flat.get(k, "")) for k in report.keys}
        row["family"] = v.family
        row.update({f"tuned {column(k)}": value for k, value in v.tuned.items()})
        row.update(n=len(v.jobs), seeds=" ".join(map(str, v.seeds)), failed=len(v.failed))
        for name, path in (("test_top1", ("test", "acc_top1")), ("test_top2", ("test", "acc_top2")),
                           ("val_top1", ("val", "acc_top1"))):
            s = v.stat(*path)
            row.update({f"{name}_mean": s.mean, f"{name}_std": s.std,
                        f"{name}_ci_low": s.low, f"{name}_ci_high": s.high})
        row.update(params=v.params, flops_forward=v.flops)
        for name in ("train_seconds", "epochs", "best_epoch"):
            s = v.stat(name, scale=1.0)
            row[f"{name}_mean"] = s.mean if s else None
        for name, key, _ in SHIFT_COLUMNS:
            s = v.stat(*summary_path("shift", key))
            row[f"shift_{name}_mean"] = s.mean if s else None
        row["aps_regime"] = v.in_circular_regime
        row.update(evaluation_columns(report, v))
        c = first.get(id(v))
        row.update(baseline=c.baseline.label if c else None, diff_top1_pp=c.diff if c else None,
                   diff_ci_low=c.low if c else None, diff_ci_high=c.high if c else None,
                   p_value=c.p if c else None, test=c.test if c else None)
        rows.append(_finite(row))
    return rows


def comparison_rows(report: Report) -> list[dict[str, Any]]:
    return [
        _finite({"dataset": text(c.variant.flat.get("dataset.name")), "variant": c.variant.label,
                 "baseline": c.baseline.label, "difference": c.what, "diff_top1_pp": c.diff,
                 "ci_low": c.low, "ci_high": c.high, "p_value": c.p,
                 "p_holm": c.p_adjusted, "p_equivalent": c.p_equivalent,
                 "p_equivalent_holm": c.p_equivalent_adjusted,
                 "equivalence_margin_pp": c.margin, "effect_size": c.effect,
                 "verdict": c.verdict, "seeds_needed": c.seeds_needed, "test": c.test, "n": c.n,
                 "params": c.variant.params, "baseline_params": c.baseline.params,
                 "sentence": c.sentence()})
        for c in report.comparisons
    ]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _dataset(v: Variant) -> str:
    return f"{text(v.flat['dataset.name'])} · " if "dataset.name" in v.flat else ""


def _variants_section(report: Report) -> list[str]:
    tuned = sorted({k for v in report.variants for k in v.tuned})
    families = len({v.family for v in report.variants}) > 1  # a column when they differ
    header = [*(column(k) for k in report.keys), *(["family"] if families else []),
              *(f"{column(k)} (tuned)" for k in tuned),
              "n", "test top-1 %", "test top-2 %", "params", "MFLOPs", "train s"]
    # a baseline's mark goes on the column its spec names (downsample=maxpool: downsample),
    # on each of them for a variant that is the baseline of several comparisons
    baselines: dict[int, set[str]] = {}
    for c in report.comparisons:
        baselines.setdefault(id(c.baseline), set()).add(
            next((k if "." in k else f"{k}.name" for k in c.spec), ""))
    rows = []
    for v in report.variants:  # by dataset, best first
        seconds = v.stat("train_seconds", scale=1.0)
        n = f"{len(v.jobs)}" + (f" (+{len(v.failed)} failed)" if v.failed else "")
        keys = [text(v.flat.get(k, "—")) for k in report.keys]
        marked = {report.keys.index(k) if k in report.keys else len(keys) - 1
                  for k in baselines.get(id(v), ())} if keys else set()
        for at in marked:
            keys[at] += " (baseline)"
        keys += [v.family] if families else []
        keys += [f"{v.tuned[k]:.3g}" if isinstance(v.tuned.get(k), float)
                 else text(v.tuned.get(k, "—")) for k in tuned]
        rows.append([*keys, n,
                     v.stat("test", "acc_top1").format(), v.stat("test", "acc_top2").format(),
                     f"{v.params:,}", f"{v.flops / 1e6:.2f}" if v.flops else "—",
                     f"{seconds.mean:.1f}" if seconds else "—"])
    lines = ["## Variants", ""]
    if at_a_glance := variants_glance(report.variants, report.keys, ("test", "acc_top1"),
                                      report.first_baselines):
        lines += ["Test top-1 %, mean ± standard deviation over seeds:", "", *at_a_glance,
                  "", "Every variant:", ""]
    lines += _table(header, rows) if rows else ["None has a completed seed."]
    if report.no_seed_completed:
        lines += ["", "No seed completed, so in no other table and no plot (why: Jobs without "
                      "results, below): " + "; ".join(
                          f"{_dataset(v)}{v.label}, {counted(len(v.failed), 'seed')} failed"
                          for v in report.no_seed_completed) + "."]
    if any(job.results.pack for v in report.variants for job in v.jobs):
        lines += ["", "train s: the wall time of a job's training; a job trained in a pack "
                      "reports its pack's (every member at once)."]
    return lines


def _comparisons_section(report: Report) -> list[str]:
    lines = []
    for spec in report.baselines:
        found = [c for c in report.comparisons if c.spec == spec]
        title = ", ".join(f"{k}={v}" for k, v in spec.items())
        lines += ["", f"## Differences in test top-1 to {title}", ""]
        if not found:
            why = unmatched(spec, report.variants)
            lines.append("No variant in this sweep has a baseline of this kind"
                         + (f" ({why})." if why else "."))
        lines += glance(found, report.keys)
        for c in found:
            lines.append(f"- **{text(c.variant.flat.get('dataset.name'))} · "
                         f"{c.variant.label}**: {c.sentence()}")
    family = sum(c.test != "none" for c in report.comparisons)
    if family:
        margin = report.comparisons[0].margin
        lines += ["", f"Verdicts at α = {ALPHA}: better or worse when the Holm-adjusted p "
                      f"(over this report's {family} tested "
                      f"comparison{'s' if family != 1 else ''}, the family) is below it; "
                      f"equivalent when the equivalence test (TOST), Holm-adjusted over the "
                      f"same family, shows the difference within ±{margin:g} pp "
                      f"(report.equivalence_margin); else inconclusive, with the seeds a side "
                      f"that would likely resolve it at α / {family} (Bonferroni, which Holm "
                      f"never asks more than). d_z / g: the effect size (Cohen's d of the "
                      f"paired differences, Hedges' g)."]
    return lines


REGIME = {True: "in", False: "out", None: "—"}


def _regime_lines(shifted: list[Variant]) -> list[str]:
    """Which variants are in APS's regime, and which operators claim what it alone allows."""
    inside = [v for v in shifted if v.in_circular_regime]
    unknown = [v for v in shifted if v.in_circular_regime is None]
    where = ("All variants are in it." if len(inside) == len(shifted) else
             "No variant is in it." if not inside and not unknown else
             f"{len(inside)} of {len(shifted)} variants are in it.")
    lines = ["", "APS's regime (Chaman & Dokmanić 2021): a network whose logits stay the same "
             "when its input is shifted circularly by its total stride, as circular padding "
             "and a global pooling head make them. Only there can an operator make a network "
             f"invariant to every circular shift (100 % circular consistency). {where}"]
    if unknown:
        lines[-1] += (f" For {counted(len(unknown), 'variant')} it is not known: "
                      f"{RESULTS_FILE} files of schema < 7 did not record it.")
    claims = sorted({text(v.flat.get("downsample.name")) for v in shifted
                     if v.in_circular_regime is False and _claims_invariance(v)})
    if claims:
        lines[-1] += (f" The {', '.join(claims)} rows are outside it, so they do not test "
                      f"that operator's claim of exact circular-shift invariance.")
    return lines


def _claims_invariance(v: Variant) -> bool:
    name = v.flat.get("downsample.name")
    return name in DOWNSAMPLES and DOWNSAMPLES.schema(name).shift_invariant


def _shift_section(report: Report) -> list[str]:
    shifted = [v for v in report.variants if v.stat(*summary_path("shift", "acc_zero"))
               or v.stat(*summary_path("shift", "acc_circular"))]
    if not shifted:
        return []
    k = shifted[0].details("shift").get("max")
    header = ["dataset", "variant", "params", "test top-1 %",
              *(title for *_, title in SHIFT_COLUMNS), "APS's regime"]
    rows = []
    for v in shifted:
        cells = []
        for _, key, _ in SHIFT_COLUMNS:
            s = v.stat(*summary_path("shift", key))
            cells.append(s.format(ci=False) if s else "—")
        rows.append([text(v.flat.get("dataset.name")), v.label, f"{v.params:,}",
                     v.stat("test", "acc_top1").format(ci=False), *cells,
                     REGIME[v.in_circular_regime]])
    at_a_glance = variants_glance(shifted, report.keys, summary_path("shift", "consistency_zero"),
                                  report.first_baselines)
    return ["", f"## Shift robustness (random shifts of up to ±{k} px)", "",
            "Consistency: the fraction of test images whose top-1 prediction is the same "
            "under two independent random shifts (Zhang 2019). In percent.",
            *_regime_lines(shifted), "",
            *(["Consistency (zero fill), mean ± standard deviation over seeds:", "",
               *at_a_glance, "", "Every variant:", ""] if at_a_glance else []),
            *_table(header, rows)]


def markdown(report: Report, tuning: list[str] = ()) -> str:
    """``report.md``; ``tuning``: the lines of a tuned sweep's learning-rate section."""
    counts = Counter(job.status for job in report.jobs)
    others = "".join(f", {counts[s]} {s}" for s in Status if counts[s] and s not in (
        Status.completed, Status.failed, Status.not_run))
    lines = [
        f"# Sweep report: `{report.sweep.name}`",
        "",
        f"{counted(len(report.jobs), 'job')}: {counts[Status.completed]} completed, "
        f"{counts[Status.failed]} failed, {counts[Status.not_run]} not run{others}; "
        f"{counted(len(report.variants), 'variant')}. Test metrics come from each job's "
        f"best-validation checkpoint, in percent: mean ± standard deviation over seeds [Student-t "
        f"{CONFIDENCE:.0%} confidence interval of the mean].",
        "",
        *_variants_section(report),
        *_comparisons_section(report),
        *_shift_section(report),
        *evaluation_sections(report),
        *tuning,
        *plateau_section(report),
        "", "## Plots", "",
        *([f"![{name}]({file})" for name, file in PLOTS.items()
           if (report.sweep / file).is_file()] or ["None drawn (`--no-plots`, or no variant)."]),
        "", "## Jobs without results", "",
    ]
    if report.unfinished:
        lines += _table(["job", "status", "reason"], _unfinished_rows(report.unfinished))
    else:
        lines.append("None: every job completed.")
    lines += ["", f"Per-variant numbers: `{TABLE_FILE}`; every comparison: "
                  f"`{COMPARISONS_FILE}`.", ""]
    return "\n".join(lines)


def _unfinished_rows(jobs: list[JobFolder]) -> list[list[str]]:
    """A row per job; the jobs of a variant that never started, one row with their seeds (a
    sweep under way has hundreds)."""
    rows, never = [], {}
    for job in jobs:
        parts = job.name.split(",")
        seeds = [p.removeprefix("seed=") for p in parts if p.startswith("seed=")]
        if job.error == NEVER_STARTED and len(seeds) == 1 and seeds[0].isdigit():
            never.setdefault(",".join(p for p in parts if not p.startswith("seed=")),
                             []).append(int(seeds[0]))
            continue
        rows.append([f"`{job.name}`", str(job.status), job.error.replace("|", "\\|")])
    for variant, numbers in never.items():
        jobs_text = f" ({len(numbers)} jobs)" if len(numbers) > 1 else ""
        rows.append([f"`{variant}`, seed {_ranges(sorted(numbers))}", str(Status.not_run),
                     f"{NEVER_STARTED}{jobs_text}"])
    return rows


def _ranges(numbers: list[int]) -> str:
    """0, 1, 2, 3, 7 → '0–3, 7'."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}–{b}" if b > a else f"{a}" for a, b in spans)
