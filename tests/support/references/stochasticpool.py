"""Stochastic pooling as Zeiler & Fergus (ICLR 2013, §3) define it, written out window by
window (there is no official code): p_i = a_i / sum_k a_k over a window R_j (eq. 3), training
keeps a_l with l ~ Multinomial(p) (eq. 4), testing keeps sum_i p_i a_i (eq. 5).

A window that overhangs the map (ceil mode) holds only the values inside it.
"""

from __future__ import annotations

import math

import torch


def windows(x: torch.Tensor, kernel: int, stride: int, ceil_mode: bool):
    """Yield (n, c, i, j, values of window (i, j) as a list of floats)."""
    n_, c_, h, w = x.shape
    rounding = math.ceil if ceil_mode else math.floor
    out_h, out_w = (rounding((size - kernel) / stride) + 1 for size in (h, w))
    for n in range(n_):
        for c in range(c_):
            for i in range(out_h):
                for j in range(out_w):
                    rows = range(i * stride, min(i * stride + kernel, h))
                    cols = range(j * stride, min(j * stride + kernel, w))
                    yield n, c, i, j, [float(x[n, c, r, s]) for r in rows for s in cols]


def probabilities(values: list[float]) -> list[float]:
    total = sum(values)
    return [a / total if total > 0 else 0.0 for a in values]


def probabilistic_weighting(x: torch.Tensor, kernel: int = 2, stride: int = 2,
                            ceil_mode: bool = False) -> torch.Tensor:
    """The test-time output: sum_i p_i a_i per window (0 for a window of zeros)."""
    rounding = math.ceil if ceil_mode else math.floor
    out = torch.zeros(*x.shape[:2], *(rounding((s - kernel) / stride) + 1 for s in x.shape[2:]),
                      dtype=torch.float64)
    for n, c, i, j, values in windows(x, kernel, stride, ceil_mode):
        out[n, c, i, j] = sum(p * a for p, a in zip(probabilities(values), values))
    return out
