"""``python -m downsample_study.report SWEEP``: a sweep's jobs turned into a verdict.

Reads every job's ``results.json`` (and ``epochs.csv``) under the folder and writes into it:
``report.md``, ``results.csv`` (one row per variant), ``comparisons.csv`` (each variant vs each
of its baselines) and the plots ``accuracy.png``, ``accuracy_vs_params.png``,
``val_curves.png``. A variant is a configuration apart from the seed; its seeds give mean,
standard deviation and a Student-t 95 % confidence interval. Differences to a baseline use a
paired t-test when both sides ran the same seeds, Welch's t-test otherwise (scipy). Failed
jobs, job folders without results and (for Hydra's basic sweeper) jobs of the sweep that never
started are listed, never dropped. When the jobs logged to W&B the report is logged too, as a
``report`` run in the sweep's group (offline without credentials, like the jobs).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter
from omegaconf import OmegaConf
from scipy import stats

from downsample_study.epochs import read_epochs
from downsample_study.results import RESULTS_FILE, read_results

log = logging.getLogger("downsample_study.report")

REPORT_FILE, TABLE_FILE, COMPARISONS_FILE = "report.md", "results.csv", "comparisons.csv"
PLOTS = {
    "accuracy": "accuracy.png",
    "params": "accuracy_vs_params.png",
    "curves": "val_curves.png",
}
CONFIDENCE, ALPHA = 0.95, 0.05
DEFAULT_BASELINES = [{"downsample": "maxpool"}]

# Config keys that do not make a different variant: where and how a job ran, not what it ran.
_IGNORED = ("seed", "mode", "paths.", "logger.", "report.", "parallel.", "speed.",
            "dataset.eval_batch_size", "dataset.verify_checksums", "dataset.download",
            "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy",
            "trainer.enable_progress_bar", "trainer.enable_model_summary",
            "trainer.log_every_n_steps")
# Always shown; these two are swept with the operator but are not its options.
_ALWAYS = ("dataset.name", "model.name", "downsample.name", "downsample.batch_norm",
           "downsample.dropout")
_SHARED = ("downsample.batch_norm", "downsample.dropout")
SHIFT_COLUMNS = [(f"{mode}.{key}", f"shift {'top-1' if key == 'acc_top1' else key} ({mode})")
                 for mode in ("zero", "circular") for key in ("acc_top1", "consistency")]


class ReportError(Exception):
    """Nothing to report on: the message says why."""


# --------------------------------------------------------------------------- jobs and variants


@dataclass
class Job:
    name: str  # the job's folder inside the sweep (its overrides)
    status: str  # completed | failed | missing | duplicate
    error: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, float]] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return int(self.results["config"]["seed"])


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tuple(node) if isinstance(node, list) else node}


def _ignored(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in _IGNORED)


def variant_key(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, v) for k, v in _flatten(config).items() if not _ignored(k)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    text = str(value)
    return text.lower() if text in ("True", "False") else text


def sweep_jobs(hydra: Any) -> list[list[str]] | None:
    """The overrides of every job of a multirun, from its ``hydra`` config node.

    Expanded by Hydra's own basic sweeper (the one the joblib and submitit launchers use too):
    ``hydra.sweeper.params``, then the command line's overrides. None for other sweepers.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if not str(hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (hydra.sweeper.get("params") or {}).items()]
    try:
        overrides = OverridesParser.create().parse_overrides([*params, *hydra.overrides.task])
        [jobs] = BasicSweeper.split_arguments(overrides, None)
    except HydraException:  # a sweep the basic sweeper cannot expand
        return None
    return jobs


def expected_jobs(sweep: Path) -> list[frozenset[str]] | None:
    """Every job the sweep was to run (from its ``multirun.yaml``), as sets of overrides."""
    path = sweep / "multirun.yaml"
    jobs = sweep_jobs(OmegaConf.load(path).hydra) if path.is_file() else None
    return None if jobs is None else [frozenset(job) for job in jobs]


def load_jobs(sweep: Path) -> list[Job]:
    """Every job under ``sweep``: with results, a folder without them, or never started."""
    jobs, started = [], set()
    folders = {p.parent.parent for p in sweep.rglob(".hydra/overrides.yaml")}
    folders |= {p.parent for p in sweep.rglob(RESULTS_FILE)}
    for folder in sorted(folders):
        name = folder.relative_to(sweep).as_posix()
        overrides = folder / ".hydra" / "overrides.yaml"
        if overrides.is_file():
            started.add(frozenset(OmegaConf.load(overrides)))
        if not (folder / RESULTS_FILE).is_file():
            jobs.append(Job(name, "missing", "no results.json: still running, killed or lost"))
            continue
        results = read_results(folder / RESULTS_FILE)
        status = results.get("status", "?")
        if status != "completed":
            error = str(results.get("error") or "?").strip().splitlines()[0]
            jobs.append(Job(name, "failed", error, results))
            continue
        jobs.append(Job(name, "completed", results=results, epochs=read_epochs(folder)))
    for overrides in expected_jobs(sweep) or []:
        if overrides not in started:
            jobs.append(Job(",".join(sorted(overrides)), "missing", "never started"))
    return jobs


@dataclass
class Stat:
    n: int
    mean: float
    std: float = math.nan
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def of(cls, values) -> Stat:
        values = np.asarray(values, dtype=float)
        mean = float(values.mean())
        if len(values) < 2:
            return cls(len(values), mean)
        std = float(values.std(ddof=1))
        if std == 0:
            return cls(len(values), mean, 0.0, mean, mean)
        low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean,
                                     scale=std / math.sqrt(len(values)))
        return cls(len(values), mean, std, float(low), float(high))

    def format(self, digits: int = 2, ci: bool = True) -> str:
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        text = f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return f"{text} [{self.low:.{digits}f}, {self.high:.{digits}f}]" if ci else text


@dataclass
class Variant:
    key: tuple[tuple[str, Any], ...]
    jobs: list[Job]  # completed, sorted by seed
    failed: list[Job]
    label: str = ""

    @property
    def flat(self) -> dict[str, Any]:
        return dict(self.key)

    @property
    def seeds(self) -> list[int]:
        return [job.seed for job in self.jobs]

    def values(self, *path: str, scale: float = 100.0) -> dict[int, float]:
        """seed → the value at ``path`` in ``results.json`` (accuracies in percent)."""
        found = {}
        for job in self.jobs:
            node = job.results
            for step in path:
                node = node.get(step) if isinstance(node, dict) else None
            if node is not None:
                found[job.seed] = float(node) * scale
        return found

    def stat(self, *path: str, scale: float = 100.0) -> Stat | None:
        values = self.values(*path, scale=scale)
        return Stat.of(list(values.values())) if values else None

    @property
    def params(self) -> int:
        return int(self.jobs[0].results["params"]["total"])


def group_variants(jobs: list[Job]) -> list[Variant]:
    grouped: dict[tuple, Variant] = {}
    for job in jobs:
        if job.status == "missing" or "config" not in job.results:
            continue
        key = variant_key(job.results["config"])
        variant = grouped.setdefault(key, Variant(key, [], []))
        if job.status != "completed":
            variant.failed.append(job)
        elif job.seed in variant.seeds:  # e.g. two sweeps of the same preset under one folder
            first = next(j for j in variant.jobs if j.seed == job.seed)
            job.status = "duplicate"
            job.error = f"same variant and seed as {first.name}: not counted"
        else:
            variant.jobs.append(job)
    variants = [v for v in grouped.values() if v.jobs]
    for v in variants:
        v.jobs.sort(key=lambda job: job.seed)
    return sorted(variants, key=lambda v: [_text(v.flat.get(k)) for k in _ALWAYS])


def shown_keys(variants: list[Variant]) -> list[str]:
    """``_ALWAYS`` and every other key that varies in the sweep, except a group's own options
    that only change with the group's choice (``optimizer.lr`` with the optimizer)."""
    keys = sorted({k for v in variants for k in v.flat} - set(_ALWAYS))
    extra = []
    for key in keys:
        choice = key if key.endswith(".name") else f"{key.split('.')[0]}.name"
        by_choice = defaultdict(set)
        for v in variants:
            by_choice[_text(v.flat.get(choice)) if choice != key else ""].add(
                _text(v.flat.get(key)))
        if any(len(values) > 1 for values in by_choice.values()):
            extra.append(key)
    return [*_ALWAYS, *extra]


def _column(key: str) -> str:
    return {"dataset.name": "dataset", "model.name": "model", "downsample.name": "downsample",
            "downsample.batch_norm": "batch_norm", "downsample.dropout": "dropout",
            "optimizer.name": "optimizer"}.get(key, key)


def _label(variant: Variant, keys: list[str], varying: set[str]) -> str:
    parts = []
    for key in keys:
        if key == "dataset.name" or (key not in varying and key not in ("model.name",
                                                                         "downsample.name")):
            continue
        parts.append(_short(key, variant.flat.get(key, "—")))
    return " · ".join(parts)


def _short(key: str, value: Any) -> str:
    """``maxpool`` for a group's choice, ``conv_activation=relu`` for another key."""
    return _text(value) if key.endswith(".name") else f"{key.split('.')[-1]}={_text(value)}"


# ------------------------------------------------------------------------------ comparisons


@dataclass
class Comparison:
    variant: Variant
    baseline: Variant
    spec: dict[str, str]
    what: str  # "stride2_fold − maxpool"
    diff: float  # percentage points, test top-1
    low: float = math.nan
    high: float = math.nan
    p: float = math.nan
    test: str = "none"  # paired | welch | none
    n: str = ""
    reason: str = "fewer than 2 seeds on a side"  # why there is no test

    @property
    def significant(self) -> bool:
        return self.p < ALPHA

    def sentence(self) -> str:
        n = self.n
        if self.test == "none":
            return f"{self.what} = {_pp(self.diff)} pp: no test ({self.reason})"
        how = ("paired t-test over seeds " + ", ".join(map(str, self.variant.seeds))
               if self.test == "paired" else "Welch's t-test")
        verdict = "significant" if self.significant else "not significant"
        return (f"{self.what} = {_pp(self.diff)} pp [{_pp(self.low)}, {_pp(self.high)}], "
                f"{_p(self.p)}: {verdict} at n = {n} ({how}; params {self.variant.params:,} "
                f"vs {self.baseline.params:,})")


def _pp(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def parse_baseline(text: str) -> dict[str, str]:
    """``model=lenet5,downsample=maxpool`` → ``{"model": "lenet5", "downsample": "maxpool"}``."""
    spec = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ReportError(f"--baseline {text!r}: expected KEY=VALUE[,KEY=VALUE...], "
                              f"e.g. downsample=maxpool")
        spec[key.strip()] = value.strip()
    return spec


def _spec_keys(spec: dict[str, str]) -> dict[str, str]:
    """Group names (``downsample``) stand for their ``.name`` key."""
    return {(k if "." in k else f"{k}.name"): _text(v) for k, v in spec.items()}


def _ignored_by(spec: dict[str, str], key: str) -> bool:
    for name in spec:
        if "." in name and key == name:
            return True
        if "." not in name and key.startswith(f"{name}.") and key not in _SHARED:
            return True
    return False


def find_baseline(variant: Variant, variants: list[Variant], spec: dict[str, str]
                  ) -> Variant | None:
    """The one variant with the spec's values that agrees with ``variant`` on every other key
    (a spec group's own options aside); None if ``variant`` is itself one, or none/several."""
    wanted = _spec_keys(spec)

    def matches(v: Variant) -> bool:
        return all(_text(v.flat.get(k)) == value for k, value in wanted.items())

    if matches(variant):
        return None
    keys = {k for k in variant.flat if not _ignored_by(spec, k)}
    found = [
        v for v in variants
        if matches(v)
        and keys == {k for k in v.flat if not _ignored_by(spec, k)}
        and all(v.flat[k] == variant.flat[k] for k in keys)
    ]
    return found[0] if len(found) == 1 else None


def compare(variant: Variant, baseline: Variant, spec: dict[str, str]) -> Comparison:
    wanted = _spec_keys(spec)

    def side(v: Variant) -> str:
        return "+".join(_short(k, v.flat.get(k)) for k in wanted)

    a, b = variant.values("test", "acc_top1"), baseline.values("test", "acc_top1")
    what = f"{side(variant)} − {side(baseline)}"
    diff = float(np.mean(list(a.values())) - np.mean(list(b.values())))
    result = Comparison(variant, baseline, spec, what, diff)
    if set(a) == set(b) and len(a) >= 2:
        seeds = sorted(a)
        x, y = [a[s] for s in seeds], [b[s] for s in seeds]
        result.n = str(len(seeds))
        if np.ptp(np.subtract(x, y)) == 0:
            result.reason = "the difference is the same for every seed"
            return result
        test, result.test = stats.ttest_rel(x, y), "paired"
    elif len(a) >= 2 and len(b) >= 2:
        result.n = f"{len(a)} vs {len(b)}"
        x, y = list(a.values()), list(b.values())
        if np.std(x) == 0 and np.std(y) == 0:
            result.reason = "no spread over seeds on either side"
            return result
        test, result.test = stats.ttest_ind(x, y, equal_var=False), "welch"
    else:
        return result
    ci = test.confidence_interval(CONFIDENCE)
    result.low, result.high, result.p = float(ci.low), float(ci.high), float(test.pvalue)
    return result


# ------------------------------------------------------------------------------ the report


@dataclass
class Report:
    sweep: Path
    jobs: list[Job]
    variants: list[Variant]
    keys: list[str]
    baselines: list[dict[str, str]]
    comparisons: list[Comparison]

    @property
    def unfinished(self) -> list[Job]:
        return [job for job in self.jobs if job.status != "completed"]


def build_report(sweep: Path, baselines: list[dict[str, str]] | None = None) -> Report:
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise ReportError(f"{sweep}: no such folder (pass a sweep folder, e.g. "
                          f"multirun/<date>/<time>)")
    jobs = load_jobs(sweep)
    if not jobs:
        raise ReportError(f"{sweep}: no jobs found (no {RESULTS_FILE} and no .hydra folders)")
    variants = group_variants(jobs)
    keys = shown_keys(variants)
    varying = {k for k in keys if len({_text(v.flat.get(k)) for v in variants}) > 1}
    for v in variants:
        v.label = _label(v, keys, varying)
    if baselines is None:
        baselines = _configured_baselines(jobs)
    comparisons = [
        compare(v, b, spec)
        for spec in baselines
        for v in variants
        if (b := find_baseline(v, variants, spec)) is not None
    ]
    return Report(sweep, jobs, variants, keys, baselines, comparisons)


def _configured_baselines(jobs: list[Job]) -> list[dict[str, str]]:
    for job in jobs:
        found = job.results.get("config", {}).get("report", {}).get("baselines")
        if found:
            return [{k: _text(v) for k, v in spec.items()} for spec in found]
    return DEFAULT_BASELINES


def _rows(report: Report) -> list[dict[str, Any]]:
    """``results.csv``: one row per variant; the comparison with the first baseline."""
    first = {id(c.variant): c for c in report.comparisons if c.spec == report.baselines[0]}
    rows = []
    for v in report.variants:
        row = {_column(k): _text(v.flat.get(k, "")) for k in report.keys}
        row.update(n=len(v.jobs), seeds=" ".join(map(str, v.seeds)), failed=len(v.failed))
        for name, path in (("test_top1", ("test", "acc_top1")), ("test_top2", ("test", "acc_top2")),
                           ("val_top1", ("val", "acc_top1"))):
            s = v.stat(*path)
            row.update({f"{name}_mean": s.mean, f"{name}_std": s.std,
                        f"{name}_ci_low": s.low, f"{name}_ci_high": s.high})
        row.update(params=v.params, flops_forward=v.jobs[0].results.get("flops_forward"))
        for column, path in (("train_seconds", ("train_seconds",)), ("epochs", ("epochs",)),
                             ("best_epoch", ("best_epoch",))):
            s = v.stat(*path, scale=1.0)
            row[f"{column}_mean"] = s.mean if s else None
        for path, _ in SHIFT_COLUMNS:
            s = v.stat("shift", *path.split("."))
            row[f"shift_{path.replace('.', '_')}_mean"] = s.mean if s else None
        c = first.get(id(v))
        row.update(baseline=c.baseline.label if c else None, diff_top1_pp=c.diff if c else None,
                   diff_ci_low=c.low if c else None, diff_ci_high=c.high if c else None,
                   p_value=c.p if c else None, test=c.test if c else None)
        rows.append(_finite(row))
    return rows


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (no spread, no test) as an empty cell, so every column keeps one type."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _comparison_rows(report: Report) -> list[dict[str, Any]]:
    return [
        _finite({"dataset": _text(c.variant.flat.get("dataset.name")), "variant": c.variant.label,
         "baseline": c.baseline.label, "difference": c.what, "diff_top1_pp": c.diff,
         "ci_low": c.low, "ci_high": c.high, "p_value": c.p, "test": c.test, "n": c.n,
         "params": c.variant.params, "baseline_params": c.baseline.params,
         "sentence": c.sentence()})
        for c in report.comparisons
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def markdown(report: Report) -> str:
    completed = sum(job.status == "completed" for job in report.jobs)
    failed = sum(job.status == "failed" for job in report.jobs)
    missing = sum(job.status == "missing" for job in report.jobs)
    duplicates = sum(job.status == "duplicate" for job in report.jobs)
    lines = [
        f"# Sweep report: `{report.sweep.name}`",
        "",
        f"{len(report.jobs)} jobs: {completed} completed, {failed} failed, {missing} missing"
        f"{f', {duplicates} duplicate' if duplicates else ''}; "
        f"{len(report.variants)} variants. Test metrics come from each job's best-validation "
        f"checkpoint, in percent: mean ± standard deviation over seeds [Student-t "
        f"{CONFIDENCE:.0%} confidence interval of the mean].",
        "",
        "## Variants",
        "",
    ]
    header = [*(_column(k) for k in report.keys), "n", "test top-1 %", "test top-2 %",
              "params", "MFLOPs", "train s"]
    rows = []
    for v in report.variants:
        seconds = v.stat("train_seconds", scale=1.0)
        flops = v.jobs[0].results.get("flops_forward")
        n = f"{len(v.jobs)}" + (f" (+{len(v.failed)} failed)" if v.failed else "")
        rows.append([*(_text(v.flat.get(k, "—")) for k in report.keys), n,
                     v.stat("test", "acc_top1").format(), v.stat("test", "acc_top2").format(),
                     f"{v.params:,}", f"{flops / 1e6:.2f}" if flops else "—",
                     f"{seconds.mean:.1f}" if seconds else "—"])
    lines += _table(header, rows)
    for spec in report.baselines:
        found = [c for c in report.comparisons if c.spec == spec]
        title = ", ".join(f"{k}={v}" for k, v in spec.items())
        lines += ["", f"## Differences in test top-1 to {title}", ""]
        if not found:
            lines.append("No variant in this sweep has a baseline of this kind.")
        for c in found:
            lines.append(f"- **{_text(c.variant.flat.get('dataset.name'))} · "
                         f"{c.variant.label}**: {c.sentence()}")
    if report.comparisons:
        lines += ["", f"Significant means p < {ALPHA} for that one comparison; p-values are "
                      f"not corrected for multiple comparisons ({len(report.comparisons)} here)."]
    shifted = [v for v in report.variants if v.stat("shift", "zero", "acc_top1")
               or v.stat("shift", "circular", "acc_top1")]
    if shifted:
        k = shifted[0].jobs[0].results["shift"].get("max_shift")
        lines += ["", f"## Shift robustness (random shifts of up to ±{k} px)", "",
                  "Consistency: the fraction of test images whose top-1 prediction is the same "
                  "under two independent random shifts (Zhang 2019). In percent.", ""]
        header = ["dataset", "variant", "params", "test top-1 %",
                  *(title for _, title in SHIFT_COLUMNS)]
        rows = []
        for v in shifted:
            cells = []
            for path, _ in SHIFT_COLUMNS:
                s = v.stat("shift", *path.split("."))
                cells.append(s.format(ci=False) if s else "—")
            rows.append([_text(v.flat.get("dataset.name")), v.label, f"{v.params:,}",
                         v.stat("test", "acc_top1").format(ci=False), *cells])
        lines += _table(header, rows)
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file})" for name, file in PLOTS.items()
              if (report.sweep / file).is_file()]
    lines += ["", "## Jobs without results", ""]
    if report.unfinished:
        lines += _table(["job", "status", "reason"],
                        [[f"`{job.name}`", job.status, job.error.replace("|", "\\|")]
                         for job in report.unfinished])
    else:
        lines.append("None: every job completed.")
    lines += ["", f"Per-variant numbers: `{TABLE_FILE}`; every comparison: "
                  f"`{COMPARISONS_FILE}`.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ plots


def _by_dataset(report: Report) -> dict[str, list[Variant]]:
    found: dict[str, list[Variant]] = defaultdict(list)
    for v in report.variants:
        found[_text(v.flat.get("dataset.name"))].append(v)
    return found


def _panels(count: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * count, height), layout="constrained")
    return fig, fig.subplots(1, count, squeeze=False)[0]


def plot_accuracy(report: Report, path: Path) -> None:
    datasets = _by_dataset(report)
    rows = max(len(vs) for vs in datasets.values())
    longest = max(len(v.label) for v in report.variants)
    fig, axes = _panels(len(datasets), 3.5 + 0.075 * longest, 1.2 + 0.45 * rows)
    for ax, (dataset, variants) in zip(axes, datasets.items()):
        for y, v in enumerate(variants):
            s = v.stat("test", "acc_top1")
            if s.n >= 2:
                ax.errorbar(s.mean, y, xerr=[[s.mean - s.low], [s.high - s.mean]], fmt="o",
                            color="C0", capsize=4)
            ax.plot(list(v.values("test", "acc_top1").values()), [y] * len(v.jobs), "x",
                    color="0.45", markersize=5)
            ax.plot(s.mean, y, "o", color="C0")
        ax.set_yticks(range(len(variants)), [v.label for v in variants], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("test top-1 accuracy (%)")
        ax.set_title(f"{dataset}: mean and {CONFIDENCE:.0%} CI (×: seeds)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=110)


def plot_accuracy_vs_params(report: Report, path: Path) -> None:
    datasets = _by_dataset(report)
    fig, axes = _panels(len(datasets), 5.0, 3.8)
    for ax, (dataset, variants) in zip(axes, datasets.items()):
        params = [v.params for v in variants]
        # variants with equal parameter counts are drawn side by side, not on top of each other
        dodge = 0.015 * ((max(params) - min(params)) or max(params))
        for i, v in enumerate(variants):
            s = v.stat("test", "acc_top1")
            same = [j for j, p in enumerate(params) if p == v.params]
            x = v.params + (same.index(i) - (len(same) - 1) / 2) * dodge
            yerr = [[s.mean - s.low], [s.high - s.mean]] if s.n >= 2 else None
            ax.errorbar(x, s.mean, yerr=yerr, fmt="o", color=f"C{i % 10}", capsize=4,
                        label=f"{v.label} ({v.params:,})")
        ax.set_xlabel("parameters")
        ax.set_ylabel("test top-1 accuracy (%)")
        ax.set_title(f"{dataset}: accuracy vs parameters", fontsize=9)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def plot_curves(report: Report, path: Path) -> bool:
    """Validation top-1 per epoch: the mean over seeds, with a ±1 std band."""
    datasets = {d: [v for v in vs if any(job.epochs for job in v.jobs)]
                for d, vs in _by_dataset(report).items()}
    datasets = {d: vs for d, vs in datasets.items() if vs}
    if not datasets:
        return False
    fig, axes = _panels(len(datasets), 5.0, 3.8)
    for ax, (dataset, variants) in zip(axes, datasets.items()):
        for i, v in enumerate(variants):
            per_epoch: dict[int, list[float]] = defaultdict(list)
            for job in v.jobs:
                for row in job.epochs:
                    if "val/acc_top1" in row:
                        per_epoch[int(row["epoch"]) + 1].append(100 * row["val/acc_top1"])
            epochs = sorted(per_epoch)
            mean = np.array([np.mean(per_epoch[e]) for e in epochs])
            std = np.array([np.std(per_epoch[e], ddof=1) if len(per_epoch[e]) > 1 else 0.0
                            for e in epochs])
            ax.plot(epochs, mean, marker=".", color=f"C{i % 10}",
                    label=f"{v.label} (n = {len(v.jobs)})")
            ax.fill_between(epochs, mean - std, mean + std, color=f"C{i % 10}", alpha=0.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epochs trained")
        ax.set_ylabel("validation top-1 accuracy (%)")
        ax.set_title(f"{dataset}: mean over seeds, band ±1 std", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return True


# ------------------------------------------------------------------------------------- W&B


def log_to_wandb(report: Report, plots: list[Path]) -> str | None:
    """Log the tables and plots as a ``report`` run in the jobs' W&B group; None when the
    jobs did not use W&B. Offline (into ``SWEEP/wandb``) when there are no credentials."""
    from downsample_study.config import LOGGER_SCHEMAS, typed_node
    from downsample_study.loggers import wandb_mode

    job = next((j for j in report.jobs if j.status == "completed"), None)
    if job is None or job.results["config"].get("logger", {}).get("name") != "wandb":
        return None
    cfg = typed_node(OmegaConf.create(job.results["config"]["logger"]), "logger", LOGGER_SCHEMAS)
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(
        project=cfg.project, entity=cfg.entity, group=cfg.group or job.results.get("group"),
        job_type="report", name=f"report {report.sweep.name}", dir=str(report.sweep), mode=mode,
        config={"sweep": str(report.sweep), "baselines": report.baselines},
        settings=wandb.Settings(silent=True, console="off", init_timeout=60),
    )
    try:
        logged: dict[str, Any] = {}
        for key, rows in (("report/variants", _rows(report)),
                          ("report/comparisons", _comparison_rows(report))):
            if rows:
                columns = list(dict.fromkeys(k for row in rows for k in row))
                logged[key] = wandb.Table(columns=columns,
                                          data=[[row.get(c) for c in columns] for row in rows])
        for plot in plots:
            logged[f"report/{plot.stem}"] = wandb.Image(str(plot))
        run.log(logged)
        where = (f"offline in {Path(run.dir).parent} (upload: wandb sync {Path(run.dir).parent})"
                 if mode == "offline" else run.url)
    finally:
        run.finish()
        wandb.teardown()  # the run's files are complete when the report returns
    return where


# -------------------------------------------------------------------------------------- CLI


def write_report(sweep: Path, baselines: list[dict[str, str]] | None = None,
                 use_wandb: bool = True) -> Report:
    """Build the report of ``sweep`` and write its files into it."""
    report = build_report(sweep, baselines)
    sweep = report.sweep
    plots = []
    if report.variants:
        plot_accuracy(report, sweep / PLOTS["accuracy"])
        plot_accuracy_vs_params(report, sweep / PLOTS["params"])
        plots = [sweep / PLOTS["accuracy"], sweep / PLOTS["params"]]
        if plot_curves(report, sweep / PLOTS["curves"]):
            plots.append(sweep / PLOTS["curves"])
    _write_csv(sweep / TABLE_FILE, _rows(report))
    _write_csv(sweep / COMPARISONS_FILE, _comparison_rows(report))
    (sweep / REPORT_FILE).write_text(markdown(report))
    if use_wandb and (where := log_to_wandb(report, plots)):
        log.info("W&B: report logged %s", where)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m downsample_study.report",
        description="Summarise a sweep folder: report.md, results.csv, comparisons.csv, plots.",
    )
    parser.add_argument("sweep", type=Path, help="the sweep folder, e.g. multirun/<date>/<time>")
    parser.add_argument(
        "--baseline", action="append", metavar="KEY=VALUE[,KEY=VALUE]",
        help="compare each variant with the one that has these values (repeatable; default: "
             "the sweep's report.baselines, else downsample=maxpool)",
    )
    parser.add_argument("--no-wandb", action="store_true", help="do not log the report to W&B")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        baselines = [parse_baseline(b) for b in args.baseline] if args.baseline else None
        report = write_report(args.sweep, baselines, use_wandb=not args.no_wandb)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown(report))
    print(f"written: {report.sweep / REPORT_FILE}, {TABLE_FILE}, {COMPARISONS_FILE} and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
