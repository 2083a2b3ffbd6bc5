"""The pooling regions of torch's ``fractional_max_pool2d`` (Graham 2014's pseudorandom
sequence, a fixed window at each start), written out from PyTorch's
``aten/src/ATen/native/FractionalMaxPool2d.cpp`` (``generate_intervals``; BSD-3-Clause):
window i of an n -> m side starts at int((i + u) * alpha) - int(u * alpha) with alpha =
(n - k) / (m - 1), the last at n - k; sample u[0] places the columns, u[1] the rows.
Changed: Python instead of C++; alpha in Python's float64 (torch: the input's dtype, so the
tests compare float64 inputs).
"""

from __future__ import annotations

import torch


def starts(n: int, m: int, kernel: int, u: float) -> list[int]:
    if m == 1:
        return [n - kernel]
    alpha = (n - kernel) / (m - 1)
    return [int((i + u) * alpha) - int(u * alpha) for i in range(m - 1)] + [n - kernel]


def fractional_max_pool(plane: torch.Tensor, kernel: int, out: tuple[int, int],
                        u: tuple[float, float]) -> torch.Tensor:
    """One H×W plane pooled to ``out`` with the draws ``u`` (columns', rows')."""
    rows = starts(plane.shape[-2], out[0], kernel, u[1])
    cols = starts(plane.shape[-1], out[1], kernel, u[0])
    return torch.tensor([[float(plane[r:r + kernel, c:c + kernel].max()) for c in cols]
                         for r in rows], dtype=plane.dtype)
