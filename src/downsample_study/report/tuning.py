"""The report's account of a tuned sweep (``hydra/sweeper=tuned``): each variant's
learning-rate study, as a table and as validation accuracy against the rate."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from omegaconf import ListConfig, OmegaConf

from downsample_study.layout import BEST_FILE, TUNING_DIR, TUNING_PLOT
from downsample_study.report.variants import short
from downsample_study.sweeps.folder import read_sweep_file
from downsample_study.sweeps.naming import override_key
from downsample_study.sweeps.tuning import LR_KEY, Tuned, read_best

COLUMNS = 5
LOW, HIGH = 1e-4, 1e-1  # the x range of a plot without a completed trial


@dataclass
class Study:
    name: str  # the variant's folder under tuning/ (its overrides)
    tuned: Tuned
    label: str = ""  # what tells it from the other studies: "mnist · avgpool · batch_norm=false"
    epochs: int | None = None  # each trial's trainer.max_epochs (as Hydra saved its config)
    dataset: str = ""  # where the sweep varies it: its plot's part
    title: str = ""  # the label without the dataset: its panel's

    @property
    def completed(self) -> list[dict]:
        return [t for t in self.tuned.trials if t["value"] is not None]


def load_studies(sweep: Path) -> list[Study]:
    folders = [path.parent for path in sorted((sweep / TUNING_DIR).glob(f"*/{BEST_FILE}"))]
    studies = [Study(folder.name, read_best(folder), epochs=_trial_epochs(folder))
               for folder in folders]
    overrides = [_overrides(folder) for folder in folders]
    common = {k for k in set().union(*overrides)
              if len({o.get(k) for o in overrides}) == 1} if len(studies) > 1 else set()
    for study, found in zip(studies, overrides, strict=True):
        shown = sorted((k for k in found if k not in common),
                       key=lambda k: "." in k)  # groups (dataset, downsample) first
        parts = {k: short(k if "." in k else f"{k}.name", found[k]) for k in shown}
        study.label = " · ".join(parts.values()) or study.name
        study.dataset = parts.pop("dataset", "")
        study.title = " · ".join(parts.values()) or study.label
    return sorted(studies, key=lambda s: s.label)


def _trial_epochs(folder: Path) -> int | None:
    for record in sorted(folder.glob("trial*/.hydra/config.yaml")):
        config = read_sweep_file(record, "the study's epochs are not stated")
        epochs = OmegaConf.select(config, "trainer.max_epochs") if config is not None else None
        return epochs if isinstance(epochs, int) else None
    return None


def _overrides(folder: Path) -> dict[str, str]:
    """A study's variant, as its trials' overrides (Hydra's record of a trial) without the
    rate; from the folder's name if no trial has one (a long name is shortened with a hash)."""
    for record in sorted(folder.glob("trial*/.hydra/overrides.yaml")):
        found = read_sweep_file(record, "the study is known by its folder's name")
        if isinstance(found, ListConfig):
            return {override_key(o): o.split("=", 1)[1] for o in map(str, found)
                    if "=" in o and override_key(o) != LR_KEY}
    return dict(part.split("=", 1) for part in re.split(r",(?=[\w.]+=)", folder.name))


def plot_tuning(studies: list[Study], path: Path) -> None:
    """One panel per variant, each trial's val top-1 against its rate; an accuracy range per
    dataset (MNIST's would squash FashionMNIST's), one range of rates for all."""
    from downsample_study.report.plots import save

    datasets: dict[str, list[Study]] = {}
    for study in studies:
        datasets.setdefault(study.dataset, []).append(study)
    columns = min(COLUMNS, max(len(group) for group in datasets.values()))
    heights = [math.ceil(len(group) / columns) for group in datasets.values()]
    fig = Figure(figsize=(2.6 * columns, 2.2 * sum(heights) + 0.4 * len(datasets) + 0.6),
                 layout="constrained")
    parts = fig.subfigures(len(datasets), 1, squeeze=False, height_ratios=heights)[:, 0]
    rates = [t["lr"] for study in studies for t in study.completed] or [LOW, HIGH]
    for part, rows, (dataset, group) in zip(parts, heights, datasets.items(), strict=True):
        grid = part.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        for i, study in enumerate(group):
            ax = grid[i // columns, i % columns]
            done = sorted(study.completed, key=lambda t: t["lr"])
            ax.plot([t["lr"] for t in done], [100 * t["value"] for t in done], ".-", color="C0")
            ax.plot(study.tuned.lr, 100 * study.tuned.value, "o", mfc="none", color="C3",
                    markersize=9)
            ax.set_xscale("log")
            ax.set_xlim(min(rates) / 1.5, max(rates) * 1.5)
            ax.grid(alpha=0.3)
            ax.set_title(study.title, fontsize=7, wrap=True)
        for i in range(len(group), rows * columns):
            grid[i // columns, i % columns].set_axis_off()
        if dataset:
            part.suptitle(dataset, fontsize=9)
    fig.supxlabel("learning rate (log scale)", fontsize=9)
    fig.supylabel("validation top-1 accuracy (%)", fontsize=9)
    fig.suptitle("each trial of each variant's learning-rate search; circled: the rate its "
                 "seeds trained at", fontsize=9)
    save(fig, path)


def _edge(study: Study) -> str:
    """"highest" / "lowest" when the best rate is the edge of the completed trials' rates:
    the optimum may then lie beyond what was searched."""
    rates = [t["lr"] for t in study.completed]
    if len(rates) < 3:
        return ""
    return ("highest" if study.tuned.lr >= max(rates) else
            "lowest" if study.tuned.lr <= min(rates) else "")


def _epochs(studies: list[Study]) -> str:
    epochs = sorted({s.epochs for s in studies if s.epochs is not None})
    if not epochs:
        return ""
    span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}–{epochs[-1]}"
    return f", each trial {span} epoch{'' if span == '1' else 's'}"


def tuning_section(studies: list[Study], plotted: bool, tested: bool = True) -> list[str]:
    """The report's lines on the studies; ``tested``: whether test seeds trained at the rates
    (not in a sweep of the studies alone, ``hydra/sweeper=lr_search``)."""
    if not studies:
        return []
    rows, edges = [], 0
    for s in studies:
        rates, edge = [t["lr"] for t in s.tuned.trials], _edge(s)
        edges += bool(edge)
        rows.append(f"| {s.label} | {len(s.tuned.trials)} ({len(s.completed)} completed) | "
                    f"{min(rates):.2g}–{max(rates):.2g} | **{s.tuned.lr:.3g}**"
                    f"{f' ({edge} tried)' if edge else ''} | {100 * s.tuned.value:.2f} |")
    note = ([f"{edges} of {len(studies)} variants' best rate is the highest or lowest they "
             f"tried: their optimum may lie beyond it (widen `hydra.sweeper.lr.low` / `high`, "
             f"or add trials)."] if edges else [])
    return ["", "## Learning-rate tuning", "",
            "Each variant's `optimizer.lr` was searched (Optuna TPE, log scale) on the "
            "validation top-1 of its selected checkpoint, at a seed none of its test seeds "
            f"share{_epochs(studies)}; "
            + ("its seeds then trained at the best rate (the table above: lr (tuned))." if tested
               else "no test seed trained (the studies alone: hydra/sweeper=lr_search)."),
            "", "| variant | trials | rates tried | best lr | val top-1 % at it |",
            "|---|---|---|---|---|", *rows, *(["", *note] if note else []),
            *(["", f"![tuning]({TUNING_PLOT})"] if plotted else [])]
