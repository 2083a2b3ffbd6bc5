"""The layers the operators are made of where torch has none: plain modules, no config."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DownsampleLayer(nn.Sequential):
    """Marks the layers an operator adds: their parameters are ``params/downsample``."""


class BlurPool(nn.Module):
    """Low-pass filter, then subsample by 2 (Zhang, "Making convnets shift-invariant again", 2019).

    A fixed binomial filter, applied depthwise, padded as Zhang's code pads (an N-map becomes
    ceil(N / 2)): by reflection, or by replicating the edge where the map is too small to reflect
    (zeros would not keep a constant map constant). Hand-written because antialiased-cnns'
    BlurPool fails on such small maps and kornia's pads with zeros.
    """

    def __init__(self, channels: int, filter_size: int = 3):
        super().__init__()
        row = torch.tensor([math.comb(filter_size - 1, k) for k in range(filter_size)])
        kernel = torch.outer(row, row).float()
        kernel = kernel / kernel.sum()
        self.register_buffer("kernel", kernel.expand(channels, 1, -1, -1).contiguous())
        self.padding = ((filter_size - 1) // 2, filter_size // 2) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if min(x.shape[-2:]) > max(self.padding) else "replicate"
        x = F.pad(x, self.padding, mode=mode)
        return F.conv2d(x, self.kernel, stride=2, groups=x.shape[1])

    def extra_repr(self) -> str:
        return f"{self.kernel.shape[0]}, filter_size={self.kernel.shape[-1]}, stride=2"


class MixedPool(nn.Module):
    """σ(α)·max + (1 − σ(α))·avg with a learned gate α, starting at ½ (α = 0)."""

    def __init__(self, gates: int, kernel_size: int, stride: int, ceil_mode: bool):
        super().__init__()
        self.max = nn.MaxPool2d(kernel_size, stride, ceil_mode=ceil_mode)
        self.avg = nn.AvgPool2d(kernel_size, stride, ceil_mode=ceil_mode)
        self.alpha = nn.Parameter(torch.zeros(gates, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.alpha)
        return gate * self.max(x) + (1 - gate) * self.avg(x)


class EvenSize(nn.Module):
    """Make a map's height and width even for a 2×2 rearrangement, as a pool would: floor mode
    drops the last odd row/column, ceil mode pads one (``mode``: F.pad's)."""

    def __init__(self, ceil_mode: bool, mode: str = "constant"):
        super().__init__()
        self.ceil_mode = ceil_mode
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.ceil_mode:
            return F.pad(x, (0, w % 2, 0, h % 2), mode=self.mode)
        return x[..., : h - h % 2, : w - w % 2]

    def extra_repr(self) -> str:
        return f"ceil_mode={self.ceil_mode}, mode={self.mode}"


class PolyphaseSampling(nn.Module):
    """Keep, per sample, the stride-2 polyphase component with the largest l2 norm.

    A circular shift of the input permutes (and rolls) the components, so the choice follows the
    content: exact invariance up to the phase. An odd side is first circularly padded by one
    (ceil(N / 2)), which loses the exact invariance.
    """

    def __init__(self):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.chosen: torch.Tensor | None = None  # each sample's phase, at the last call
        self.given: torch.Tensor | None = None  # phases to take instead (``Residual`` sets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="circular")
        phases = self.unshuffle(x).unflatten(1, (c, 4)).transpose(1, 2)  # N, 4, C, H/2, W/2
        index = (self.given if self.given is not None
                 else phases.pow(2).sum(dim=(2, 3, 4)).argmax(dim=1))
        self.chosen = index
        return phases[torch.arange(n, device=x.device), index]


class Residual(nn.Module):
    """``body(x) + shortcut(x)``: a residual block's sum (its ReLU follows as a layer of its
    own); a downsampling point may sit in either branch. Where both subsample by polyphase
    choice, the shortcut takes the body's phases (as the APS code does), so both branches
    shift alike and the sum stays equivariant to circular shifts."""

    def __init__(self, body: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        leaders, followers = ([m for m in branch.modules() if isinstance(m, PolyphaseSampling)]
                              for branch in (self.body, self.shortcut))
        if not followers or len(leaders) != len(followers):  # (a pack: one of each a member)
            return out + self.shortcut(x)
        for leader, follower in zip(leaders, followers, strict=True):
            follower.given = leader.chosen
        try:
            return out + self.shortcut(x)
        finally:
            for follower in followers:
                follower.given = None


class Subsample(nn.Module):
    """Every ``stride``-th row and column from the first (``x[:, :, ::s, ::s]``): the identity
    shortcut's subsampling (He et al. 2016's option A), a 1×1 convolution's stride alone."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :: self.stride, :: self.stride]

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class ChannelPad(nn.Module):
    """Zero channels before and after the map's own: option A's shortcut to a wider stage."""

    def __init__(self, before: int, after: int):
        super().__init__()
        self.before, self.after = before, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self) -> str:
        return f"before={self.before}, after={self.after}"
