"""Per-variant statistics over seeds: mean, standard deviation and a Student-t confidence
interval of the mean (scipy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE, ALPHA = 0.95, 0.05


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
