"""``tables.tex``: the report's variants and comparisons as LaTeX tables for a paper.

pandas' ``Styler.to_latex`` writes them with booktabs rules (``\\usepackage{booktabs}``); text
is escaped for LaTeX, numbers are in math mode."""

from __future__ import annotations

import math

import pandas as pd

from downsample_study.report.contents import Report
from downsample_study.report.statistics import Stat
from downsample_study.report.variants import column, text


def _mean_sd(stat: Stat | None) -> str:
    """report.md's ``mean ± sd`` in math mode."""
    return "--" if stat is None else f"${stat.format(ci=False).replace('±', chr(92) + 'pm')}$"


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _latex(frame: pd.DataFrame, numbers: list[str], caption: str, label: str) -> str:
    words = [c for c in frame.columns if c not in numbers]
    styler = frame.style.hide(axis="index").format(escape="latex", subset=words)
    styler = styler.format_index(escape="latex", axis="columns")  # batch_norm: batch\\_norm
    layout = "".join("r" if c in numbers else "l" for c in frame.columns)
    return styler.to_latex(hrules=True, column_format=layout, caption=caption, label=label,
                           position="htbp", position_float="centering")


def variants_table(report: Report) -> str:
    rows = []
    for v in report.variants:
        row = {column(k): text(v.flat.get(k, "")) for k in report.keys}
        row.update({"n": f"${len(v.jobs)}$",
                    "test top-1 %": _mean_sd(v.stat("test", "acc_top1")),
                    "test top-2 %": _mean_sd(v.stat("test", "acc_top2")),
                    "params": f"${v.params:,}$".replace(",", "{,}")})
        rows.append(row)
    numbers = ["n", "test top-1 %", "test top-2 %", "params"]
    frame = pd.DataFrame(rows, columns=[*map(column, report.keys), *numbers])
    return _latex(frame, numbers, "Test accuracy of each variant: mean $\\pm$ standard "
                  "deviation over seeds, on the checkpoint selected on validation.",
                  "tab:variants")


def comparisons_table(report: Report) -> str:
    rows = [{"dataset": text(c.variant.flat.get("dataset.name", "")),
             "variant": c.variant.label, "baseline": c.baseline.label,
             "difference (pp)": (f"${_signed(c.diff)}$" if math.isnan(c.low) else
                                 f"${_signed(c.diff)}$ $[{_signed(c.low)}, {_signed(c.high)}]$"),
             "Holm p": "--" if math.isnan(c.p_adjusted) else f"${c.p_adjusted:.2g}$",
             "verdict": c.verdict}
            for c in report.comparisons]
    numbers = ["difference (pp)", "Holm p"]
    frame = pd.DataFrame(rows, columns=["dataset", "variant", "baseline", *numbers, "verdict"])
    return _latex(frame, numbers, "Each variant against its baseline: the difference in test "
                  "top-1 with its 95\\% confidence interval, and the Holm-adjusted $p$.",
                  "tab:comparisons")


def latex_tables(report: Report) -> str:
    """Both tables, the comparisons' only where there are any."""
    parts = [variants_table(report)] if report.variants else []
    if report.comparisons:
        parts.append(comparisons_table(report))
    return "% tables.tex: \\usepackage{booktabs}\n" + "\n".join(parts)
