"""A sweep at a glance: a row per value of the key that varies most (the operator, usually),
a column per dataset and other varying value, so dozens of rows fit one screen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from downsample_study.report.comparisons import Comparison, pp
from downsample_study.report.variants import Variant, column, short, text

DATASET = "dataset.name"
AT_LEAST = 3  # fewer rows read as well in the list

Item = TypeVar("Item")


def pivot(items: Sequence[Item], flat: Callable[[Item], dict[str, Any]],
          number: Callable[[Item], float], cell: Callable[[Item], str],
          keys: list[str], marked: Callable[[Item], bool] = lambda item: False) -> list[str]:
    """The table of ``items``, rows by mean ``number`` against their columns', largest first;
    none for fewer than ``AT_LEAST`` items, nothing varying, or two items in one cell."""
    if len(items) < AT_LEAST:
        return []
    values = {k: {text(flat(item).get(k)) for item in items} for k in keys if k != DATASET}
    varying = [k for k in keys if len(values.get(k, ())) > 1]
    if not varying:
        return []
    rows_key = max(varying, key=lambda k: len(values[k]))  # the first of the widest
    across = [k for k in (DATASET, *varying) if k != rows_key and k in keys]

    def row_of(item: Item) -> str:
        return text(flat(item).get(rows_key))

    def where(item: Item) -> str:
        return " · ".join(text(flat(item).get(k)) if k == DATASET
                          else short(k, flat(item).get(k)) for k in across) or "all"

    # columns by dataset, then by the other keys' values (batch_norm false before true)
    order = {where(item): tuple(text(flat(item).get(k)) for k in across) for item in items}
    columns = sorted(order, key=order.get)
    # rows by their mean against each column's mean, so a row with an empty cell (a dataset
    # it did not run on) is placed by the cells it has
    by_column: dict[str, list[float]] = {}
    for item in items:
        by_column.setdefault(where(item), []).append(number(item))
    centre = {col: sum(found) / len(found) for col, found in by_column.items()}
    numbers: dict[str, list[float]] = {}
    for item in items:
        numbers.setdefault(row_of(item), []).append(number(item) - centre[where(item)])
    rows = sorted(numbers, key=lambda row: -sum(numbers[row]) / len(numbers[row]))
    cells = {(row_of(item), where(item)): cell(item) for item in items}
    if len(cells) < len(items):
        return []
    label = {row: row + " (baseline)" if all(marked(i) for i in items if row_of(i) == row)
             else row for row in rows}
    return [f"| {column(rows_key)} | " + " | ".join(columns) + " |",
            "|" + "---|" * (len(columns) + 1),
            *(f"| {label[row]} | " + " | ".join(cells.get((row, col), "—") for col in columns)
              + " |" for row in rows)]


def _verdict_cell(c: Comparison) -> str:
    if c.test == "none":
        return f"{pp(c.diff)} (no test)"
    if c.significant:
        return f"**{pp(c.diff)} {c.verdict}**"
    return f"{pp(c.diff)} {'≈' if c.outcome == 'equivalent' else '?'}"


def glance(found: list[Comparison], keys: list[str]) -> list[str]:
    """``found``: the comparisons with one baseline; ``keys``: the report's shown keys."""
    table = pivot(found, lambda c: c.variant.flat,  # the best first: an error's lowest
                  lambda c: -c.diff if c.lower_is_better else c.diff, _verdict_cell, keys)
    if not table:
        return []
    return [*table, "",
            f"Difference in {found[0].metric}, pp, at the verdict the sentences below give: "
            f"**bold**, better or worse (Holm p < 0.05); ≈, equivalent within "
            f"±{found[0].margin:g} pp; "
            f"?, inconclusive at these seeds; —, not in the sweep.", ""]


def variants_glance(variants: list[Variant], keys: list[str], path: tuple[str, ...],
                    baselines: set[int], best_first: int = 1) -> list[str]:
    """Each variant's mean ± standard deviation over seeds of the value at ``path``
    (percent), the rows of the variants in ``baselines`` (ids) marked; the rows largest first,
    smallest first with ``best_first`` -1 (an error)."""
    shown = [v for v in variants if v.stat(*path)]
    return pivot(shown, lambda v: v.flat, lambda v: best_first * v.stat(*path).mean,
                 lambda v: v.stat(*path).format(ci=False), keys,
                 marked=lambda v: id(v) in baselines)
