"""The comparisons against one baseline at a glance: a table with a row per value of the key
that varies most among the compared variants (the operator, usually) and a column per
dataset and value of the other varying keys (BatchNorm on, off), each cell the difference
and its verdict. Dozens of sentences become one screen."""

from __future__ import annotations

from downsample_study.report.comparisons import Comparison, pp
from downsample_study.report.variants import column, short, text

DATASET = "dataset.name"
AT_LEAST = 3  # fewer comparisons read as well in the list


def _cell(c: Comparison) -> str:
    if c.test == "none":
        return f"{pp(c.diff)} (no test)"
    if c.significant:
        return f"**{pp(c.diff)} {c.verdict}**"
    return f"{pp(c.diff)} {'≈' if c.verdict.startswith('equivalent') else '?'}"


def glance(found: list[Comparison], keys: list[str]) -> list[str]:
    """``found``: the comparisons with one baseline; ``keys``: the report's shown keys."""
    if len(found) < AT_LEAST:
        return []
    values = {k: {text(c.variant.flat.get(k)) for c in found} for k in keys if k != DATASET}
    varying = [k for k in keys if len(values.get(k, ())) > 1]
    if not varying:
        return []
    rows_key = max(varying, key=lambda k: len(values[k]))  # the first of the widest
    across = [k for k in (DATASET, *varying) if k != rows_key and k in keys]

    def where(c: Comparison) -> str:
        return " · ".join(text(c.variant.flat.get(k)) if k == DATASET
                          else short(k, c.variant.flat.get(k)) for k in across)

    # columns by dataset, then by the other keys' values (batch_norm false before true)
    order = {where(c): tuple(text(c.variant.flat.get(k)) for k in across) for c in found}
    columns = sorted(order, key=order.get)
    diffs: dict[str, list[float]] = {}
    for c in found:  # rows by their mean difference, best first
        diffs.setdefault(text(c.variant.flat.get(rows_key)), []).append(c.diff)
    rows = sorted(diffs, key=lambda row: -sum(diffs[row]) / len(diffs[row]))
    cells = {(text(c.variant.flat.get(rows_key)), where(c)): _cell(c) for c in found}
    if len(cells) < len(found):  # two comparisons in one cell: the sentences alone say it
        return []
    table = [f"| {column(rows_key)} | " + " | ".join(columns) + " |",
             "|" + "---|" * (len(columns) + 1),
             *(f"| {row} | " + " | ".join(cells.get((row, col), "—") for col in columns) + " |"
               for row in rows)]
    margin = found[0].margin
    return [*table, "",
            f"Difference in test top-1, pp, at the verdict the sentences below give: **bold**, "
            f"better or worse (Holm p < 0.05); ≈, equivalent within ±{margin:g} pp; ?, "
            f"inconclusive at these seeds; —, not in the sweep.", ""]
