"""Each variant against its baseline: the difference in test top-1 with its confidence
interval and p-value, from a paired t-test when both sides ran the same seeds, Welch's
otherwise (scipy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from downsample_study.errors import ReportError
from downsample_study.report.statistics import ALPHA, CONFIDENCE
from downsample_study.report.variants import SHARED, Variant, short, text


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
        if self.test == "none":
            return f"{self.what} = {pp(self.diff)} pp: no test ({self.reason})"
        how = ("paired t-test over seeds " + ", ".join(map(str, self.variant.seeds))
               if self.test == "paired" else "Welch's t-test")
        verdict = "significant" if self.significant else "not significant"
        return (f"{self.what} = {pp(self.diff)} pp [{pp(self.low)}, {pp(self.high)}], "
                f"{_p(self.p)}: {verdict} at n = {self.n} ({how}; params "
                f"{self.variant.params:,} vs {self.baseline.params:,})")


def pp(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def parse_baseline(spec: str) -> dict[str, str]:
    """``model=lenet5,downsample=maxpool`` → ``{"model": "lenet5", "downsample": "maxpool"}``."""
    found = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ReportError(f"--baseline {spec!r}: expected KEY=VALUE[,KEY=VALUE...], "
                              f"e.g. downsample=maxpool")
        found[key.strip()] = value.strip()
    return found


def _spec_keys(spec: dict[str, str]) -> dict[str, str]:
    """Group names (``downsample``) stand for their ``.name`` key."""
    return {(k if "." in k else f"{k}.name"): text(v) for k, v in spec.items()}


def _ignored_by(spec: dict[str, str], key: str) -> bool:
    for name in spec:
        if "." in name and key == name:
            return True
        if "." not in name and key.startswith(f"{name}.") and key not in SHARED:
            return True
    return False


def find_baseline(variant: Variant, variants: list[Variant], spec: dict[str, str]
                  ) -> Variant | None:
    """The one variant with the spec's values that agrees with ``variant`` on every other key
    (a spec group's own options aside); None if ``variant`` is itself one, or none/several."""
    wanted = _spec_keys(spec)

    def matches(v: Variant) -> bool:
        return all(text(v.flat.get(k)) == value for k, value in wanted.items())

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
        return "+".join(short(k, v.flat.get(k)) for k in wanted)

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
