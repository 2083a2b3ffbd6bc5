"""Tiny networks whose behaviour under shifts is known by construction, for the shift tests."""

from __future__ import annotations

import torch
from torch import nn

from downsample_study.nets.layers import DownsampleLayer, Subsample


def pointwise_then_global_pool(channels: int = 1) -> nn.Module:
    """A 1×1 conv map averaged over the image: invariant to any permutation of the pixels."""
    return nn.Sequential(nn.Conv2d(channels, 10, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


def flatten_linear(side: int, channels: int = 1) -> nn.Module:
    """Every pixel position has its own weights: not shift invariant at all."""
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, 10))


class MeanSign(nn.Module):
    """Class 0 where the map's mean is positive, else class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))
        return torch.stack([mean, -mean], dim=1)


def stripe_parity() -> nn.Module:
    """Subsample by 2, then ``MeanSign``: on vertical stripes (bright even columns) class 0 at an
    even horizontal offset, class 1 at an odd one (the subsampling sees only dark columns)."""
    return nn.Sequential(Subsample(2), MeanSign())


class BrightestColumn(nn.Module):
    """Class 1 where the brightest pixel lies in column ``threshold`` or right of it, else 0."""

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        column = x.amax(dim=(1, 2)).argmax(dim=1)
        return nn.functional.one_hot((column >= self.threshold).long(), 2).float()


def circular_conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="circular")


def space_to_depth_net() -> nn.Module:
    """Circular convs and two 2×2 space-to-depth points: equivariant to shifts by the stride."""
    return nn.Sequential(circular_conv(1, 4), nn.ReLU(), DownsampleLayer(nn.PixelUnshuffle(2)),
                         circular_conv(16, 8), nn.ReLU(), DownsampleLayer(nn.PixelUnshuffle(2)),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def strided_conv_net() -> nn.Module:
    """Circular convs, two of them with stride 2: equivariant to shifts by the stride."""
    return nn.Sequential(circular_conv(1, 4), nn.ReLU(), circular_conv(4, 8, stride=2), nn.ReLU(),
                         circular_conv(8, 8, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


def subsampling_net() -> nn.Module:
    """A circular conv, then every other row and column: the plainest stride-2 point."""
    return nn.Sequential(circular_conv(1, 4), nn.Tanh(), Subsample(2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


def zero_map_net() -> nn.Module:
    """A conv of zero weights before a max pool: its downsampling point's map is all zero."""
    conv = circular_conv(1, 4)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def odd_rows_net() -> nn.Module:
    """ReLU then subsampling: on bright odd rows (dark elsewhere) a zero map, which a 1-px
    vertical shift makes non-zero."""
    return nn.Sequential(nn.ReLU(), Subsample(2), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Uniform(nn.Module):
    """Class 0 where every pixel of the image has the same value, else class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        uniform = (flat.amax(1) == flat.amin(1)).float()
        return torch.stack([uniform, 1 - uniform], dim=1)


class ModeSeen(nn.Module):
    """The identity, noting whether it ran in training mode at each call."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x
