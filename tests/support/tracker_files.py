"""Readers of what the CSV and TensorBoard loggers wrote in a job's folder."""

from __future__ import annotations

import csv
from pathlib import Path


def tensorboard_scalars(folder: Path) -> tuple[dict[str, list[float]], set[str]]:
    """Every scalar of ``folder``'s event files, by tag in logged order, and the plugins the
    events name (``hparams`` for the HParams tab)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    scalars: dict[str, list[float]] = {}
    plugins: set[str] = set()
    for events in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(events)).Load():
            for value in event.summary.value:
                plugins.add(value.metadata.plugin_data.plugin_name)
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars.setdefault(value.tag, []).append(float(value.tensor.float_val[0]))
    return scalars, plugins


def csv_rows(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))
