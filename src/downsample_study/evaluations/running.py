"""Run the evaluations a job's ``evaluation`` node switches on, one after another, timed."""

from __future__ import annotations

import time
from pathlib import Path

from torch import nn

# each module registers its builder when imported
from downsample_study.evaluations import (  # noqa: F401
    aliasing,
    attacks,
    corruptions,
    cost,
    equivariance,
    featuremaps,
    shift,
    shift_grid,
)
from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, enabled
from downsample_study.storage import atomic_write

SHOWN = 6  # summary numbers printed per evaluation


def run_evaluations(net: nn.Module, data: EvaluationData, settings: object,
                    say=print) -> dict[str, Measured]:
    """Each switched-on evaluation of ``settings`` (the ``evaluation`` node) on ``net``, in
    eval mode on the test split's device; its wall time in ``seconds``."""
    found: dict[str, Measured] = {}
    was_training = net.training
    net.eval().to(data.device)
    try:
        for name, cfg in enabled(settings):
            started = time.perf_counter()
            measured = EVALUATIONS[name](net, data, cfg)
            measured.seconds = round(time.perf_counter() - started, 3)
            found[name] = measured
            shown = "  ".join(f"{key} {value:.4g}" for key, value in
                              list(measured.summary.items())[:SHOWN])
            more = len(measured.summary) - SHOWN
            rest = f"  (+{more} more in results.json)" if more > 0 else ""
            figures = ", ".join(measured.figures)
            say(f"{name} ({measured.seconds:.1f} s): {shown or 'figure ' + figures}{rest}")
    finally:
        net.train(was_training)
    return found


def figure_path(folder: Path, evaluation: str, figure: str) -> Path:
    """``<folder>/<evaluation>_<figure>.png`` (``<figure>.png`` where the names are one)."""
    return Path(folder) / (f"{figure}.png" if figure == evaluation else
                           f"{evaluation}_{figure}.png")


def save_figures(found: dict[str, Measured], folder: Path) -> dict[str, Path]:
    """Each figure as a PNG in ``folder``: {"<evaluation>/<figure>": its path}."""
    saved = {}
    for evaluation, measured in found.items():
        for name, figure in measured.figures.items():
            path = figure_path(folder, evaluation, name)
            with atomic_write(path, "wb") as f:
                figure.savefig(f, format="png", dpi=110)
            saved[f"{evaluation}/{name}"] = path
    return saved

