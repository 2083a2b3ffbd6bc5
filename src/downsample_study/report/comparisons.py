"""Each variant against its baseline: the difference in test top-1 (or in an evaluation's
headline number) and the verdict.

A paired t-test when both sides ran the same seeds, else Welch's; TOST for equivalence within
the margin; both Holm-adjusted over the report's comparisons, so every claim holds family-wise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from downsample_study.errors import ReportError
from downsample_study.report.statistics import ALPHA, CONFIDENCE
from downsample_study.report.variants import SHARED, Variant, short, text

POWER = 0.8  # for the seeds that would resolve an inconclusive comparison
TOP1 = ("test", "acc_top1")  # what a comparison compares unless told
MAX_SEEDS = 1000


@dataclass
class Comparison:
    variant: Variant
    baseline: Variant
    spec: dict[str, str]
    what: str  # "stride2_fold − maxpool"
    diff: float  # percentage points, of ``metric``
    low: float = math.nan
    high: float = math.nan
    p: float = math.nan
    test: str = "none"  # paired | welch | none
    n: str = ""
    reason: str = "fewer than 2 seeds on a side"  # why there is no test
    p_adjusted: float = math.nan  # Holm over the report's comparisons (``adjust``)
    margin: float = math.nan  # pp: the equivalence margin
    p_equivalent: float = math.nan  # TOST: the difference is within ±margin
    p_equivalent_adjusted: float = math.nan  # Holm over the report's TOSTs (``adjust``)
    family: int = 1  # how many comparisons ``adjust`` saw
    effect: float = math.nan  # Cohen's d_z (paired) or Hedges' g (Welch)
    seeds_needed: int | None = None  # per side, to resolve an inconclusive comparison
    spread: float = math.nan  # sd of the paired differences, or the pooled sd (Welch)
    metric: str = "test top-1"  # what is compared
    lower_is_better: bool = False  # an error: a negative difference is the better

    @property
    def significant(self) -> bool:
        return self.p_adjusted < ALPHA

    @property
    def outcome(self) -> str:
        """The verdict in one word: better, worse, equivalent, inconclusive or no test."""
        if self.test == "none":
            return "no test"
        if self.significant:
            return "better" if (self.diff > 0) != self.lower_is_better else "worse"
        if self.p_equivalent_adjusted < ALPHA:
            return "equivalent"
        return "inconclusive"

    @property
    def verdict(self) -> str:
        if self.outcome == "equivalent":
            return f"equivalent within ±{self.margin:g} pp"
        return self.outcome

    def sentence(self) -> str:
        if self.test == "none":
            return f"{self.what} = {pp(self.diff)} pp: no test ({self.reason})"
        how = ("paired t-test over seeds " + ", ".join(map(str, self.variant.seeds))
               if self.test == "paired" else "Welch's t-test")
        effect = "d_z" if self.test == "paired" else "g"
        resolve = (f"; about {self.seeds_needed} seeds a side would resolve it"
                   if self.outcome == "inconclusive" and self.seeds_needed else "")
        return (f"{self.what} = {pp(self.diff)} pp [{pp(self.low)}, {pp(self.high)}], "
                f"{_p(self.p)}, Holm {_p(self.p_adjusted)}, {effect} = "
                f"{f'{self.effect:.2f}'.replace('-', '−')}: **{self.verdict}** at n = "
                f"{self.n}{resolve} "
                f"({how}; TOST {_p(self.p_equivalent)}, Holm "
                f"{_p(self.p_equivalent_adjusted)}; params {self.variant.params:,} vs "
                f"{self.baseline.params:,})")


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


def unmatched(spec: dict[str, str], variants: list[Variant]) -> str | None:
    """Why no variant has one of ``spec``'s values (a key none has, or a value of it none
    has), naming the key and the values there are; None where each value is some variant's."""
    for key, value in _spec_keys(spec).items():
        named = key.removesuffix(".name") if key.endswith(".name") and key.count(".") == 1 \
            else key
        values = sorted({text(v.flat[key]) for v in variants if key in v.flat})
        if not values:
            return f"{named}: no variant's config has this key"
        if value not in values:
            return f"{named}={value}: no variant has it; its values here: {', '.join(values)}"
    return None


def is_baseline(variant: Variant, spec: dict[str, str]) -> bool:
    """Whether ``variant`` has the spec's values."""
    return all(text(variant.flat.get(k)) == value for k, value in _spec_keys(spec).items())


def find_baseline(variant: Variant, variants: list[Variant], spec: dict[str, str]
                  ) -> Variant | None:
    """The one variant with the spec's values that agrees with ``variant`` on every other key
    (a spec group's own options aside); None if ``variant`` is itself one, or none/several."""
    if is_baseline(variant, spec):
        return None
    keys = {k for k in variant.flat if not _ignored_by(spec, k)}
    found = [
        v for v in variants
        if is_baseline(v, spec)
        and keys == {k for k in v.flat if not _ignored_by(spec, k)}
        and all(v.flat[k] == variant.flat[k] for k in keys)
    ]
    return found[0] if len(found) == 1 else None


def compare_all(variants: list[Variant], baselines: list[dict[str, str]], margin: float,
                path: tuple[str, ...] = TOP1, metric: str = "test top-1",
                lower_is_better: bool = False) -> list[Comparison]:
    """Each variant with a value at ``path`` against each kind of baseline it has (once, under
    the first kind that pairs the two), Holm-adjusted over these comparisons."""
    comparisons, seen = [], set()
    for spec in baselines:
        for v in variants:
            b = find_baseline(v, variants, spec)
            if (b is not None and (id(v), id(b)) not in seen and v.values(*path)
                    and b.values(*path)):
                seen.add((id(v), id(b)))
                comparisons.append(compare(v, b, spec, margin, path, metric, lower_is_better))
    adjust(comparisons)
    return comparisons


def compare(variant: Variant, baseline: Variant, spec: dict[str, str], margin: float = 0.2,
            path: tuple[str, ...] = TOP1, metric: str = "test top-1",
            lower_is_better: bool = False) -> Comparison:
    wanted = _spec_keys(spec)

    def side(v: Variant) -> str:
        return "+".join(short(k, v.flat.get(k)) for k in wanted)

    a, b = variant.values(*path), baseline.values(*path)
    what = f"{side(variant)} − {side(baseline)}"
    diff = float(np.mean(list(a.values())) - np.mean(list(b.values())))
    result = Comparison(variant, baseline, spec, what, diff, margin=margin, metric=metric,
                        lower_is_better=lower_is_better)
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
    _equivalence_and_effect(result, np.asarray(x), np.asarray(y))
    # until ``adjust`` sees the report's family
    result.p_adjusted, result.p_equivalent_adjusted = result.p, result.p_equivalent
    return result


def _equivalence_and_effect(result: Comparison, x: np.ndarray, y: np.ndarray) -> None:
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    m = result.margin
    if result.test == "paired":
        d = x - y
        result.p_equivalent = float(ttost_paired(x, y, -m, m)[0])
        result.spread = float(d.std(ddof=1))
        result.effect = float(d.mean() / result.spread)
    else:
        result.p_equivalent = float(ttost_ind(x, y, -m, m, usevar="unequal")[0])
        result.spread = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1))
                                  / (len(x) + len(y) - 2))
        correction = 1 - 3 / (4 * (len(x) + len(y)) - 9)  # Hedges' small-sample factor
        result.effect = float((x.mean() - y.mean()) / result.spread * correction)


def _seeds_needed(c: Comparison) -> int | None:
    """Seeds a side likely to resolve ``c`` at α / family (Bonferroni: Holm never asks more):
    the fewer of ``POWER`` for the observed difference and, within the margin, the seeds that
    fit its interval inside ±m; at least one more than now (it is unresolved at those)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    if c.spread == 0 or not math.isfinite(c.spread):
        return None
    alpha, paired = ALPHA / c.family, c.test == "paired"
    power = TTestPower() if paired else TTestIndPower()
    with warnings.catch_warnings():  # no solution (a tiny effect): nan, left out below
        warnings.simplefilter("ignore", ConvergenceWarning)
        candidates = [power.solve_power(effect_size=abs(c.diff) / c.spread, alpha=alpha,
                                        power=POWER)] if c.diff else []
    if abs(c.diff) < c.margin:
        per_side = 1 if paired else 2
        candidates.append(next((k for k in range(2, MAX_SEEDS)
                                if stats.t.ppf(1 - alpha, k - 1) * c.spread
                                * math.sqrt(per_side / k) < c.margin - abs(c.diff)), math.inf))
    n = min((k for k in candidates if math.isfinite(k)), default=None)
    if n is None:
        return None
    now = max(int(side) for side in c.n.split(" vs "))
    return min(MAX_SEEDS, max(now + 1, math.ceil(n)))


def adjust(comparisons: list[Comparison]) -> None:
    """Holm–Bonferroni over ``comparisons`` (a report's family: every comparison it makes
    that has a test), of the difference tests and, apart, of the equivalence tests."""
    from statsmodels.stats.multitest import multipletests

    tested = [c for c in comparisons if c.test != "none"]
    if not tested:
        return
    differences = multipletests([c.p for c in tested], alpha=ALPHA, method="holm")[1]
    equivalences = multipletests(np.nan_to_num([c.p_equivalent for c in tested], nan=1.0),
                                 alpha=ALPHA, method="holm")[1]
    for comparison, p, p_eq in zip(tested, differences, equivalences, strict=True):
        comparison.p_adjusted, comparison.p_equivalent_adjusted = float(p), float(p_eq)
        comparison.family = len(tested)
        comparison.seeds_needed = (_seeds_needed(comparison)
                                   if comparison.outcome == "inconclusive" else None)
