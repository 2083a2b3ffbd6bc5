"""Per-variant statistics over seeds: mean, standard deviation and a Student-t confidence
interval of the mean (scipy), clipped to the values the quantity can take (an accuracy's
interval at n = 2 can run past 100 %)."""

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
    def of(cls, values, bounds: tuple[float, float] = (-math.inf, math.inf)) -> Stat:
        values = np.asarray(values, dtype=float)
        mean = float(values.mean())
        if len(values) < 2:
            return cls(len(values), mean)
        std = float(values.std(ddof=1))
        if std == 0:
            return cls(len(values), mean, 0.0, mean, mean)
        low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean,
                                     scale=std / math.sqrt(len(values)))
        return cls(len(values), mean, std, max(float(low), bounds[0]), min(float(high), bounds[1]))

    def format(self, digits: int = 2, ci: bool = True) -> str:
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        text = f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return f"{text} [{self.low:.{digits}f}, {self.high:.{digits}f}]" if ci else text
