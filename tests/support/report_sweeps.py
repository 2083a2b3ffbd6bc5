"""A hand-made sweep folder whose numbers are known, as the report reads one: each job's
results.json and epochs, without training anything."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from downsample_study.layout import EPOCHS_FILE
from downsample_study.results import EPOCH_COLUMNS, SCHEMA_VERSION

OPTIONS = {"maxpool": {"kernel_size": 2, "stride": 2}, "avgpool": {"kernel_size": 2, "stride": 2},
           "stride2": {"kernel_size": 3}}
# test top-1 per (dataset, operator) and seed
TOP1 = {
    ("mnist", "maxpool"): {0: 0.9810, 1: 0.9822, 2: 0.9815},
    ("mnist", "stride2"): {0: 0.9837, 1: 0.9841, 2: 0.9852},
    ("mnist", "avgpool"): {0: 0.9790, 1: 0.9801},  # other seeds than maxpool: Welch's test
    ("fashion_mnist", "maxpool"): {0: 0.9012, 1: 0.8950, 2: 0.8991},
    ("fashion_mnist", "stride2"): {0: 0.9030, 1: 0.9003, 2: 0.8962},
}


def job_config(dataset: str, op: str, seed: int, logger: str = "csv",
               batch_norm: bool = False) -> dict:
    """The job's config as its results.json records it."""
    return {
        "dataset": {"name": dataset, "batch_size": 64},
        "downsample": {"name": op, "batch_norm": batch_norm, "dropout": 0.0,
                       **OPTIONS.get(op, {})},
        "model": {"name": "lenet5"},
        "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
        "logger": {"name": logger, "project": "downsample_study", "entity": None,
                   "mode": "auto", "group": None, "job_type": "train", "tags": []},
        "trainer": {"max_epochs": 3, "accelerator": "cpu", "devices": 1},
        "paths": {"data_dir": f"/somewhere/{seed}"},
        "seed": seed,
        "mode": "train",
    }


def shift_measured(top1: float) -> dict:
    """The shift evaluation's numbers of a job of this test top-1, as ``results.json`` of
    schema 8 records them (``evaluations.shift``)."""
    modes = {"zero": {"acc_top1": top1 - 0.1, "consistency": 0.8},
             "circular": {"acc_top1": top1 - 0.12, "consistency": 0.78}}
    return {"summary": {f"{'acc' if key == 'acc_top1' else key}_{mode}": value
                        for mode, values in modes.items() for key, value in values.items()},
            "details": {"max": 3, "samples": 1, "seed": 0, **modes}, "seconds": 1.0}


def write_job(sweep: Path, dataset: str, op: str, seed: int, top1: float, logger: str = "csv",
              batch_norm: bool = False, trackers: list[dict] | None = None,
              schema: int = SCHEMA_VERSION) -> Path:
    """A completed job's folder as the report reads it: results.json and three epochs. Its
    shift evaluation where ``schema`` keeps it: ``evaluations.shift`` (8 on), ``shift`` (its
    ``max_shift``, before 8); before 6 no ``trackers`` (the config's ``logger`` says)."""
    folder = sweep / f"dataset={dataset},downsample={op},seed={seed}{',bn' * batch_norm}"
    folder.mkdir(parents=True)
    params = 61_706 + (2_650 if op == "stride2" else 0)
    shift = shift_measured(top1)
    old_shift = {"max_shift": 3, "samples": 1, "seed": 0,
                 **{mode: shift["details"][mode] for mode in ("zero", "circular")}}
    results = {
        "schema_version": schema,
        "status": "completed",
        "config": job_config(dataset, op, seed, logger, batch_norm),
        "group": "multirun_test",
        "params": {"total": params, "trainable": params, "downsample": params - 61_706},
        "flops_forward": 833_040,
        "val": {"acc_top1": top1 + 0.001, "acc_top2": 0.995, "loss": 0.05},
        "test": {"acc_top1": top1, "acc_top2": min(1.0, top1 + 0.012), "loss": 0.06},
        **({"evaluations": {"shift": shift}} if schema >= 8 else {"shift": old_shift}),
        "epochs": 3,
        "best_epoch": 2,
        "train_seconds": 10.0 + seed,
        **({"trackers": trackers} if schema >= 6 and trackers is not None else {}),
    }
    (folder / "results.json").write_text(json.dumps(results))
    with (folder / EPOCHS_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EPOCH_COLUMNS)
        for epoch in range(3):
            writer.writerow([epoch, 100 * (epoch + 1), epoch + 1.0, 0.3,
                             top1 - 0.02 * (2 - epoch), 0.99])
    return folder


def write_report_sweep(sweep: Path) -> Path:
    """TOP1's jobs, one failed (diverged) and one missing (started, never finished)."""
    for (dataset, op), by_seed in TOP1.items():
        for seed, top1 in by_seed.items():
            write_job(sweep, dataset, op, seed, top1)
    failed = sweep / "dataset=mnist,downsample=stride2,seed=3"
    failed.mkdir()
    (failed / "results.json").write_text(json.dumps({
        "status": "failed", "config": job_config("mnist", "stride2", 3),
        "error": "training loss is nan at epoch 1, step 800: the run diverged",
    }))
    killed = sweep / "dataset=mnist,downsample=maxpool,seed=3"
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "overrides.yaml").write_text("- dataset=mnist\n- downsample=maxpool\n")
    return sweep


def capture_figures(monkeypatch, module, saved: bool = True) -> list:
    """The figures ``module`` saves, kept for the test to inspect (and still saved, unless
    not ``saved``: quicker)."""
    figures = []
    save = module.save if saved else lambda fig, path: None
    monkeypatch.setattr(module, "save", lambda fig, path: (figures.append(fig), save(fig, path)))
    return figures


def percent(values) -> np.ndarray:
    return 100 * np.array(list(values))
