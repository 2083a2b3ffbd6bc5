"""Hand-made sweeps whose jobs ran the evaluations, their numbers known: each evaluation's
``summary`` and ``details`` as ``results.json`` (schema 8) records them, by the agreed names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from downsample_study.layout import PLOTS
from support.report_sweeps import write_job

EVALUATION_PLOTS = {PLOTS[name] for name in ("shift_grid_circular", "shift_grid_zero",
                                             "tradeoffs", "attacks")}
# how much more robust each operator is than maxpool (a fraction of the images)
LEVELS = {"maxpool": 0.0, "blurpool": 0.05, "stride2": -0.02}
SEEDS = (0, 1, 2)
EPSILONS = (1 / 255, 8 / 255)
SEVERITIES = (1, 2)
CORRUPTIONS = ("gaussian_noise", "motion_blur")
EVALUATED = ("shift_grid", "equivariance", "aliasing", "corruptions", "attacks", "cost")


def jitter(op: str, seed: int) -> float:
    """A seed's own small deviation (±0.4 pp), not the same for two operators."""
    return 0.002 * ((seed * 7 + list(LEVELS).index(op) * 3) % 5 - 2)


def shift_grid(level: float, radius: int = 1, modes=("circular", "zero")) -> dict:
    """Accuracy falling with the offset's distance, more under zero fill, a little more to the
    right (dx > 0) than to the left, so a map drawn mirrored is told apart."""
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    summary, details = {}, {"radius": radius, "images": 100}
    for m, mode in enumerate(modes):
        grid = 0.9 + level - (0.02 + 0.01 * m) * (abs(dy) + abs(dx)) + 0.004 * dx
        details[mode] = {"accuracy": grid.tolist()}
        summary.update({f"mean_{mode}": float(grid.mean()), f"worst_{mode}": float(grid.min()),
                        f"ripple_{mode}": float(grid.max() - grid.min()),
                        f"flip_rate_{mode}": 0.1 - level, f"fidelity_{mode}": 0.95 + level / 2})
    return {"summary": summary, "details": details, "seconds": 1.0}


def corruptions(clean: float, errors: dict[str, list[float]],
                severities=SEVERITIES) -> dict:
    summary = {"clean_error": clean,
               "mean_error": float(np.mean([e for found in errors.values() for e in found])),
               **{f"error_{c}": float(np.mean(found)) for c, found in errors.items()}}
    return {"summary": summary, "details": {"clean_error": clean, "severities": list(severities),
                                            "errors": errors}, "seconds": 1.0}


def attacks(clean: float, fgsm: list[float], pgd: list[float], epsilons=EPSILONS) -> dict:
    budgets = [f"eps{eps * 255:g}" for eps in epsilons]
    return {"summary": {"clean": clean, **{f"fgsm_{b}": a for b, a in zip(budgets, fgsm)},
                        **{f"pgd_{b}": a for b, a in zip(budgets, pgd)}},
            "details": {"epsilons": list(epsilons), "clean": clean, "fgsm": fgsm, "pgd": pgd,
                        "pgd_steps": 10}, "seconds": 1.0}


def every_evaluation(op: str, seed: int) -> dict[str, dict]:
    level = LEVELS[op] + jitter(op, seed)
    errors = {c: [0.2 + 0.1 * i + 0.1 * s - level for s in range(len(SEVERITIES))]
              for i, c in enumerate(CORRUPTIONS)}
    points = [{"name": "conv1", "stride": 2, "aligned": 0.001, "unaligned": 0.3 - level},
              {"name": "conv2", "stride": 2, "aligned": 0.003, "unaligned": 0.5 - level}]
    return {
        "shift_grid": shift_grid(level),
        "equivariance": {"summary": {"aligned": 0.002, "unaligned": 0.4 - level},
                         "details": {"points": points}},
        "aliasing": {"summary": {"trained": 0.3 - level, "initial": 0.35},
                     "details": {"points": [{"name": "conv1", "stride": 2,
                                             "trained": 0.3 - level, "initial": 0.35}]}},
        "corruptions": corruptions(0.02 - level / 10, errors),
        "attacks": attacks(0.98 + level / 10, [0.9 + level, 0.5 + level],
                           [0.85 + level, 0.2 + level]),
        "cost": {"summary": {"latency_ms_b1": 1.5 + seed / 10, "images_per_s_b1": 600.0 - seed,
                             "latency_ms_b64": 9.0 + seed, "images_per_s_b64": 7000.0 + seed,
                             "peak_memory_mb": 42.0},
                 "details": {"device": "cpu", "times_s": {"1": [0.0015], "64": [0.009]}}},
    }


def add_evaluations(folder: Path, evaluations: dict[str, dict]) -> None:
    """Record ``evaluations`` beside what the job's results.json has."""
    path = folder / "results.json"
    results = json.loads(path.read_text())
    results.setdefault("evaluations", {}).update(evaluations)
    path.write_text(json.dumps(results))


def write_evaluated_sweep(sweep: Path, names=EVALUATED, ops=tuple(LEVELS)) -> Path:
    """``ops`` on MNIST, seeds ``SEEDS``, each job with the evaluations ``names``."""
    for op in ops:
        for seed in SEEDS:
            top1 = 0.98 + (LEVELS[op] + jitter(op, seed)) / 10 + 0.001 * seed
            folder = write_job(sweep, "mnist", op, seed, top1)
            measured = every_evaluation(op, seed)
            add_evaluations(folder, {name: measured[name] for name in names})
    return sweep


def summaries(sweep: Path, evaluation: str) -> dict[str, dict[str, list[float]]]:
    """operator → summary key → the seeds' values, read back from the files."""
    found: dict[str, dict[str, list[float]]] = {}
    for path in sorted(sweep.glob("*/results.json")):
        results = json.loads(path.read_text())
        op = results["config"]["downsample"]["name"]
        for key, value in results["evaluations"].get(evaluation, {}).get("summary", {}).items():
            found.setdefault(op, {}).setdefault(key, []).append(value)
    return found
