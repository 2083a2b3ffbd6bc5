"""A report section per evaluation the sweep ran (its summary keys, mean over seeds), their
columns of ``results.csv``, and each one's headline number compared with the baselines.

Each headline is a Holm family of its own: running one more evaluation changes no verdict on
test top-1 or on another evaluation."""

from __future__ import annotations

from typing import Any

from downsample_study.report.comparisons import Comparison, compare_all
from downsample_study.report.contents import Report
from downsample_study.report.corruption_error import mce_baselines, mces
from downsample_study.report.glance import glance, variants_glance
from downsample_study.report.statistics import ALPHA, Stat
from downsample_study.report.summaries import (
    SECTIONS,
    digits,
    header,
    kind,
    ordered,
    path,
    scale,
)
from downsample_study.report.variants import Variant, text


def measured(variants: list[Variant], evaluation: str) -> list[Variant]:
    """The variants with a seed that ran ``evaluation``."""
    return [v for v in variants
            if any(evaluation in job.results.evaluations for job in v.jobs)]


def sections(variants: list[Variant]) -> list[str]:
    """The evaluations with a section of their own, in ``SECTIONS``' order, then any other
    that a seed ran (a plug-in's), by name; shift has its own, feature maps are a figure."""
    ran = {name for v in variants for job in v.jobs for name in job.results.evaluations}
    return [*SECTIONS, *sorted(ran - {*SECTIONS, "shift", "feature_maps"})]


def summary_keys(variants: list[Variant], evaluation: str) -> list[str]:
    """Every summary key of ``evaluation`` that a seed of ``variants`` recorded, in order."""
    return ordered(evaluation, {key for v in variants for job in v.jobs for key in
                                (job.results.evaluations.get(evaluation) or {}).get(
                                    "summary", {})})


def stat(v: Variant, evaluation: str, key: str) -> Stat | None:
    return v.stat(*path(evaluation, key), scale=scale(evaluation, key))


def _cell(s: Stat | None, places: int = 2) -> str:
    return s.format(places, ci=False) if s else "—"


def headline_comparisons(variants: list[Variant], baselines: list[dict[str, str]],
                         margin: float) -> dict[tuple[str, str], list[Comparison]]:
    """Each evaluation's headline key (``summaries.KINDS``) of each variant against its
    baselines, as test top-1 is; none where no variant has a baseline that measured it."""
    found = {}
    for evaluation in sections(variants):
        key = kind(evaluation).headline(summary_keys(variants, evaluation))
        if key is None:
            continue
        comparisons = compare_all(variants, baselines, margin, path(evaluation, key),
                                  f"{evaluation} {key}", kind(evaluation).lower_is_better)
        if comparisons:
            found[evaluation, key] = comparisons
    return found


def evaluation_sections(report: Report) -> list[str]:
    """The sections of the evaluations some variant ran, in ``sections``' order."""
    lines = []
    for evaluation in sections(report.variants):
        shown = measured(report.variants, evaluation)
        if shown:
            lines += _section(report, evaluation, shown)
    return lines


def _about(evaluation: str, shown: list[Variant]) -> str:
    """The kind's sentence, its ``{...}`` filled in from the first seed's details."""
    return kind(evaluation).about.format_map(_Known(shown[0].details(evaluation)))


class _Known(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _table(header_cells: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header_cells) + " |", "|" + "---|" * len(header_cells),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _section(report: Report, evaluation: str, shown: list[Variant]) -> list[str]:
    keys = summary_keys(shown, evaluation)
    apart = kind(evaluation).apart
    main = [k for k in keys if not (apart and k.startswith(apart))]
    rest = [k for k in keys if k not in main]
    mce = mce_baselines(report, shown) if evaluation == "corruptions" else {}
    extra = ["mCE %", "relative mCE %"] if any(mce.values()) else []
    rows = []
    for v in shown:
        cells = [_cell(stat(v, evaluation, k), digits(evaluation, k)) for k in main]
        if extra:
            cells += [_cell(Stat.of(list(found.values())) if found else None)
                      for found in mces(v, mce[id(v)])]
        rows.append([text(v.flat.get("dataset.name")), v.label,
                     _cell(v.stat("test", "acc_top1")), *cells])
    percent = " (in percent where marked %)" if any(
        header(evaluation, k) != k for k in keys) else ""
    lines = ["", f"## {kind(evaluation).title} (`{evaluation}`)", "",
             f"{_about(evaluation, shown)} Mean ± standard deviation over seeds{percent}; "
             f"their 95 % confidence intervals: results.csv."]
    key = kind(evaluation).headline(keys)
    if key and (at_a_glance := variants_glance(
            shown, report.keys, path(evaluation, key), report.first_baselines,
            best_first=-1 if kind(evaluation).lower_is_better else 1)):
        lines += ["", f"{header(evaluation, key)}, mean ± standard deviation over seeds:", "",
                  *at_a_glance, "", "Every variant:"]
    lines += ["", *_table(["dataset", "variant", "test top-1 %",
                           *(header(evaluation, k) for k in main), *extra], rows)]
    if rest:
        lines += ["", f"{kind(evaluation).apart_title}:", "", *_table(
            ["dataset", "variant", *(k.removeprefix(apart) for k in rest)],
            [[text(v.flat.get("dataset.name")), v.label,
              *(_cell(stat(v, evaluation, k)) for k in rest)] for v in shown])]
    if evaluation == "corruptions":
        lines += ["", _mce_sentence(report, mce)]
    if evaluation == "cost":
        devices = {str(job.results.evaluations["cost"].get("details", {}).get("device"))
                   for v in shown for job in v.jobs if "cost" in job.results.evaluations}
        lines += ["", f"Measured on: {', '.join(sorted(devices))}."]
    return lines + _claims(report, evaluation, key)


def _mce_sentence(report: Report, mce: dict[int, Variant | None]) -> str:
    spec = ", ".join(f"{k}={v}" for k, v in report.baselines[0].items()) \
        if report.baselines else None
    if not any(mce.values()):
        return (f"No variant has a baseline ({spec or 'no report.baselines'}) that measured "
                f"them, so no mCE: `mean_error` is the unnormalised mean error over "
                f"corruptions and severities.")
    missing = "; — where a variant has none" if not all(mce.values()) else ""
    return (f"mCE (Hendrycks & Dietterich 2019): CE_c = Σ_s E_s,c / Σ_s E_s,c of the "
            f"baseline ({spec}{missing}), its errors the mean over its seeds; the mean over "
            f"corruptions c, in percent (100: the baseline's). Relative mCE likewise with E − "
            f"E_clean: the error a corruption adds (— where the baseline's adds none). Over "
            f"the corruptions and severities both measured; mean ± standard deviation over "
            f"the variant's seeds.")


def _claims(report: Report, evaluation: str, key: str | None) -> list[str]:
    found = report.headlines.get((evaluation, key), [])
    tested = sum(c.test != "none" for c in found)
    if not found:
        return []
    lines = []
    for spec in report.baselines:
        mine = [c for c in found if c.spec == spec]
        if not mine:
            continue
        title = ", ".join(f"{k}={v}" for k, v in spec.items())
        lines += ["", f"### Differences in {key} to {title}", "", *glance(mine, report.keys)]
        lines += [f"- **{text(c.variant.flat.get('dataset.name'))} · {c.variant.label}**: "
                  f"{c.sentence()}" for c in mine]
    better = "lower" if kind(evaluation).lower_is_better else "higher"
    lines += ["", f"Verdicts as for test top-1 ({better} is better here), at α = {ALPHA}, "
                  f"Holm-adjusted over the {tested} tested comparisons of {key}: a family of "
                  f"its own."]
    return lines


def evaluation_columns(report: Report, v: Variant) -> dict[str, Any]:
    """``results.csv``'s columns of the evaluations (shift's aside): each summary key's mean
    and CI over seeds (percent where a fraction), mCE, and the headline's comparison with
    the first baseline."""
    row: dict[str, Any] = {}
    for evaluation in sections(report.variants):
        for key in summary_keys(report.variants, evaluation):
            s = stat(v, evaluation, key)
            row.update({f"{evaluation}_{key}_{column}": getattr(s, part) if s else None
                        for column, part in (("mean", "mean"), ("ci_low", "low"),
                                             ("ci_high", "high"))})
    if measured(report.variants, "corruptions"):
        baseline = mce_baselines(report, [v])[id(v)]
        for name, found in zip(("mce", "relative_mce"), mces(v, baseline),
                               strict=True):
            row[f"corruptions_{name}_mean"] = Stat.of(list(found.values())).mean \
                if found else None
    first = report.baselines[0] if report.baselines else None
    for (evaluation, key), comparisons in report.headlines.items():
        c = next((c for c in comparisons if c.variant is v and c.spec == first), None)
        row.update({f"{evaluation}_{key}_diff_pp": c.diff if c else None,
                    f"{evaluation}_{key}_p_holm": c.p_adjusted if c else None,
                    f"{evaluation}_{key}_verdict": c.verdict if c else None})
    return row
