"""What a model and an operator tell each other at a downsampling point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import nn

from downsample_study.choices import Choice


class Rounding(Choice):
    """How a point sizes its output when a window overhangs the map's edge."""

    floor = "floor"  # PyTorch's default: the overhanging window is dropped
    ceil = "ceil"  # Caffe's: it is kept (All-CNN)
    # Paddle's integer division, which truncates toward zero: floor, except that a map
    # smaller than the window keeps one output (seed 004 pools its 1x1 map to 1x1)
    truncate = "truncate"


class Stands(Choice):
    """What a point stands in for in the network it was made from."""

    pool = "pool"  # a pooling layer (the LeNets', VGG's): the operator replaces it
    conv = "conv"  # a strided conv or subsampling (a ResNet's): the conv runs at the operator's
    # stride and its layer follows


@dataclass(frozen=True)
class DownsamplePoint:
    """What the model tells the operator about the place it is asked to downsample."""

    channels: int
    rounding: Rounding = Rounding.floor
    size: tuple[int, int] | None = None  # the map's (H, W) at the point: truncate needs it
    stands_for: Stands = Stands.pool
    # a residual shortcut's point, which takes the phases its block's body chose (``Residual``):
    # an operator that learns to choose them (LPS) needs nothing of its own to choose here
    follows: bool = False

    def ceil_mode(self, kernel: int = 2) -> bool:
        """Whether a window of ``kernel`` that overhangs the edge yields an output."""
        if self.rounding == Rounding.truncate:
            if self.size is None:
                raise ValueError("a truncating point needs the map's size")
            return min(self.size) < kernel
        return self.rounding == Rounding.ceil


class Downsample(NamedTuple):
    conv_stride: int  # the stride the preceding convolution should use
    layer: nn.Module  # applied after that convolution's block (a DownsampleLayer or Identity)
