"""SoftPool's CPU path, ported from alexandrosstergiou/SoftPool, ``pytorch/SoftPool/idea.py``
(``soft_pool2d``; MIT licence, Copyright (c) 2020 Alexandros Stergiou).

Changed: the CUDA branch (the ``softpool_cuda`` extension) and the 1-d/3-d versions dropped;
``force_inplace`` dropped with it. The arithmetic is the original's, e^x computed as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair


def soft_pool2d(x: torch.Tensor, kernel_size=2, stride=None) -> torch.Tensor:
    kernel_size = _pair(kernel_size)
    stride = kernel_size if stride is None else _pair(stride)
    e_x = torch.exp(x)
    return (F.avg_pool2d(x.mul(e_x), kernel_size, stride=stride).mul_(sum(kernel_size))
            .div_(F.avg_pool2d(e_x, kernel_size, stride=stride).mul_(sum(kernel_size))))
