"""Importance-weighted pooling: each value of a window weighted by how large it is.

SoftPool weighs a window's values by their softmax; LIP by the softmax of a learned map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.nets.later_downsample_configs import LIPConfig, SoftPoolConfig
from downsample_study.nets.operators.core import added, register_downsample
from downsample_study.nets.points import Downsample, DownsamplePoint


def pooled_size(size: int, kernel_size: int, stride: int, ceil_mode: bool) -> int:
    """A pool's output size along one side, as torch's pools size it (no padding)."""
    out = (size - kernel_size + (stride - 1 if ceil_mode else 0)) // stride + 1
    # in ceil mode the last window must start inside the map
    return out - 1 if ceil_mode and (out - 1) * stride >= size else out


def pool_windows(x: torch.Tensor, kernel_size: int, stride: int, ceil_mode: bool,
                 fill: float) -> torch.Tensor:
    """The values of each pooling window, (N, C, H', W', k·k), windows placed as torch's pools
    place them; where a window overhangs the edge (ceil mode), its missing values are ``fill``.
    (Hand-written: torch pools only reduce a window to its max, mean or power mean.)"""
    h, w = x.shape[-2:]
    pad_h, pad_w = (max(0, (pooled_size(n, kernel_size, stride, ceil_mode) - 1) * stride
                        + kernel_size - n) for n in (h, w))
    x = F.pad(x, (0, pad_w, 0, pad_h), value=fill)
    return x.unfold(-2, kernel_size, stride).unfold(-2, kernel_size, stride).flatten(-2)


class SoftPool(nn.Module):
    """SoftPool (Stergiou, Poppe & Kalliatakis, ICCV 2021): Σ e^{aᵢ} aᵢ / Σ e^{aⱼ} per window.

    The reference's CPU path computes e^{aᵢ} as it is, so activations above 88 overflow float32
    to inf (the output becomes NaN) and windows below −104 underflow to 0/0. Here the weights
    are a softmax over each window, which subtracts the window's max first: finite wherever the
    activations are. An overhanging window (ceil mode) weighs only the values it holds.
    """

    def __init__(self, kernel_size: int = 2, stride: int = 2, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.ceil_mode = kernel_size, stride, ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (self.kernel_size, self.stride, self.ceil_mode)
        weights = torch.softmax(pool_windows(x, *shape, fill=float("-inf")), dim=-1)
        return (weights * pool_windows(x, *shape, fill=0.0)).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class LocalImportancePool(nn.Module):
    """Local importance pooling, LIP (Gao, Wang & Wu, ICCV 2019), with the logit module
    LIP-ResNet puts in place of its max pool (``SimplifiedLIP`` in sebgao/LIP).

    Importance e^{12·σ(IN(conv3×3(x)))}; each 3×3 window (stride 2, padding 1: an N-map
    becomes ceil(N / 2)) averages x weighted by it. The conv starts at zero, as LIP-ResNet's
    ``init_layer`` sets it: LIP starts as average pooling.
    """

    def __init__(self, channels: int, gate_scale: float = 12.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        nn.init.zeros_(self.conv.weight)
        self.norm = nn.InstanceNorm2d(channels, affine=True)
        self.gate_scale = gate_scale  # the logits lie in (0, gate_scale): weights in (1, e^12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (1, 1):
            # a weighted average of one value is that value (and InstanceNorm needs two)
            return x
        logit = self.gate_scale * torch.sigmoid(self.norm(self.conv(x)))
        weight = logit.exp()
        return F.avg_pool2d(x * weight, 3, 2, 1) / F.avg_pool2d(weight, 3, 2, 1)

    def extra_repr(self) -> str:
        return f"kernel_size=3, stride=2, padding=1, gate_scale={self.gate_scale}"


@register_downsample("softpool")
def softpool(cfg: SoftPoolConfig, point: DownsamplePoint) -> Downsample:
    """SoftPool: exponentially weighted pooling (Stergiou, Poppe & Kalliatakis, ICCV 2021)."""
    return added(SoftPool(cfg.kernel_size, cfg.stride, point.ceil_mode(cfg.kernel_size)))


@register_downsample("lip")
def lip(cfg: LIPConfig, point: DownsamplePoint) -> Downsample:
    """LIP: local importance-based pooling (Gao, Wang & Wu, ICCV 2019)."""
    return added(LocalImportancePool(point.channels))
