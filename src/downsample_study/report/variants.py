"""Variants (a configuration apart from the seed): jobs grouped into them, and their labels."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from downsample_study.nets.downsample_base import Family
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.report.statistics import Stat
from downsample_study.report.summaries import is_fraction
from downsample_study.results import Status
from downsample_study.sweeps.folder import JobFolder

# Always shown; these two are swept with the operator but are not its options.
ALWAYS = ("dataset.name", "model.name", "downsample.name", "downsample.batch_norm",
          "downsample.dropout")
SHARED = ("downsample.batch_norm", "downsample.dropout")
FRACTION_DECIMALS = 4  # of a percentage: Variant.values


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists as tuples, so they can be compared)."""
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tuple(node) if isinstance(node, list) else node}


def _is_fraction(path: Sequence[str]) -> bool:
    """Whether the value at ``path`` in the results is a fraction of a split's images."""
    if len(path) == 4 and path[0] == "evaluations" and path[2] == "summary":
        return is_fraction(path[1], path[3])
    return path[-1].startswith(("acc", "consistency"))


def variant_key(job: JobFolder) -> tuple[tuple[str, Any], ...]:
    """The keys that make the job's variant: those that define it (``config/defining.py``)
    but its seed and what a sweeper tuned for it (lists as tuples, to be compared)."""
    tuned = {*job.results.config.get("tuned", ()), "seed"}
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in job.defining.items() if k not in tuned))


def text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    shown = str(value)
    return shown.lower() if shown in ("True", "False") else shown


def _walk(node: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if dataclasses.is_dataclass(node):
            node = getattr(node, step, None)
        elif isinstance(node, dict):
            node = node.get(step)
        else:
            return None
    return node


@dataclass
class Variant:
    key: tuple[tuple[str, Any], ...]
    jobs: list[JobFolder]  # completed, sorted by seed
    failed: list[JobFolder]
    label: str = ""

    @property
    def flat(self) -> dict[str, Any]:
        return dict(self.key)

    @property
    def seeds(self) -> list[int]:
        return [job.seed for job in self.jobs]

    def values(self, *path: str, scale: float = 100.0) -> dict[int, float]:
        """seed → the value at ``path`` in the results (accuracies in percent).

        Fractions are rounded to ``FRACTION_DECIMALS`` (counts of up to 10⁶ images stay apart):
        float32's few 1e-6 pp of noise would make a paired t-test call equal count differences
        certain (p ≈ 0 at n = 2)."""
        fraction = _is_fraction(path)
        found = {}
        for job in self.jobs:
            value = _walk(job.results, path)
            if value is not None:
                scaled = float(value) * scale
                found[job.seed] = round(scaled, FRACTION_DECIMALS) if fraction else scaled
        return found

    def stat(self, *path: str, scale: float = 100.0) -> Stat | None:
        """Over seeds, scaled (accuracies in percent): a fraction's interval stays within
        [0, ``scale``]."""
        values = self.values(*path, scale=scale)
        bounds = (0.0, scale) if _is_fraction(path) else (-math.inf, math.inf)
        return Stat.of(list(values.values()), bounds) if values else None

    @property
    def tuned(self) -> dict[str, Any]:
        """What a sweeper tuned for the variant (``optimizer.lr``), as its first seed ran."""
        config = self.jobs[0].results.config
        flat = flatten(config)
        return {key: flat.get(key) for key in config.get("tuned", ())}

    @property
    def params(self) -> int:
        return int(self.jobs[0].results.params.total)

    @property
    def flops(self) -> int | None:
        return self.jobs[0].results.flops_forward

    @property
    def family(self) -> str:
        """Its operator's family (``downsample_configs.Family``); ``other`` for an operator this
        process does not know (a plug-in not imported here)."""
        name = self.flat.get("downsample.name")
        return (DOWNSAMPLES.schema(name).family if name in DOWNSAMPLES else Family.other).value

    def details(self, evaluation: str) -> dict[str, Any]:
        """The ``details`` of ``evaluation`` of its first seed that ran it (empty if none)."""
        return next((job.results.evaluations[evaluation].get("details") or {}
                     for job in self.jobs if evaluation in job.results.evaluations), {})

    @property
    def in_circular_regime(self) -> bool | None:
        """Whether its network is in APS's regime, as its shift evaluation measured; for a file
        written before it did (schema < 7), False without circular padding (a zero-padded or
        unpadded conv breaks the regime), else None: not known."""
        results, shift = self.jobs[0].results, self.details("shift")
        if shift.get("regime"):
            return bool(shift["regime"]["invariant"])
        if (results.config.get("model") or {}).get("padding_mode", "zeros") != "circular":
            return False
        return None


def by_dataset(variants: list[Variant]) -> dict[str, list[Variant]]:
    """The variants of each dataset, in their order."""
    found: dict[str, list[Variant]] = defaultdict(list)
    for v in variants:
        found[text(v.flat.get("dataset.name"))].append(v)
    return found


def group_variants(jobs: list[JobFolder]) -> tuple[list[Variant], list[Variant]]:
    """The variants with a completed seed, by dataset and best first; and those whose every
    seed failed (diverged at their rate, say: a finding too, not to be left out)."""
    grouped: dict[tuple, Variant] = {}
    for job in jobs:
        if (job.status not in (Status.completed, Status.failed) or job.results is None
                or not job.results.config):  # an interrupted job resumes: not a failure
            continue
        key = variant_key(job)
        variant = grouped.setdefault(key, Variant(key, [], []))
        if job.status != Status.completed:
            variant.failed.append(job)
        elif job.seed in variant.seeds:  # e.g. two sweeps of the same preset under one folder
            first = next(j for j in variant.jobs if j.seed == job.seed)
            job.status = Status.duplicate
            job.error = f"same variant and seed as {first.name}: not counted"
        else:
            variant.jobs.append(job)
    variants = [v for v in grouped.values() if v.jobs]
    for v in variants:
        v.jobs.sort(key=lambda job: job.seed)
    return sorted(variants, key=_order), [v for v in grouped.values() if not v.jobs]


def _order(v: Variant) -> tuple:
    """By dataset, then best first (mean test top-1; variants without results last)."""
    values = v.values("test", "acc_top1")
    mean = sum(values.values()) / len(values) if values else -math.inf
    return (text(v.flat.get("dataset.name")), -mean, [text(v.flat.get(k)) for k in ALWAYS])


def shown_keys(variants: list[Variant]) -> list[str]:
    """``ALWAYS`` and every other key that varies in the sweep, except a group's own options
    that only change with the group's choice (``optimizer.lr`` with the optimizer)."""
    keys = sorted({k for v in variants for k in v.flat} - set(ALWAYS))
    extra = []
    for key in keys:
        choice = key if key.endswith(".name") else f"{key.split('.')[0]}.name"
        by_choice = defaultdict(set)
        for v in variants:
            by_choice[text(v.flat.get(choice)) if choice != key else ""].add(text(v.flat.get(key)))
        if any(len(values) > 1 for values in by_choice.values()):
            extra.append(key)
    return [*ALWAYS, *extra]


def column(key: str) -> str:
    return {"dataset.name": "dataset", "model.name": "model", "downsample.name": "downsample",
            "downsample.batch_norm": "batch_norm", "downsample.dropout": "dropout",
            "optimizer.name": "optimizer", "optimizer.lr": "lr"}.get(key, key)


def short(key: str, value: Any) -> str:
    """``maxpool`` for a group's choice, ``conv_activation=relu`` for another key."""
    return text(value) if key.endswith(".name") else f"{key.split('.')[-1]}={text(value)}"


def label_variants(variants: list[Variant], keys: list[str]) -> None:
    """Each variant's label: its model and operator, and every other shown key that varies."""
    varying = {k for k in keys if len({text(v.flat.get(k)) for v in variants}) > 1}
    for variant in variants:
        variant.label = " · ".join(
            short(key, variant.flat.get(key, "—")) for key in keys
            if key != "dataset.name" and (key in varying or key in ("model.name",
                                                                    "downsample.name"))
        )
