"""Strided operators: keep every other sample, after a conv or a rearrangement."""

from __future__ import annotations

from torch import nn

from downsample_study.nets.downsample_configs import (
    FoldedStrideConfig,
    SpaceToDepthConfig,
    StridedConvConfig,
)
from downsample_study.nets.layers import EvenSize
from downsample_study.nets.operators.core import added, own_conv, register_downsample
from downsample_study.nets.points import Downsample, DownsamplePoint


@register_downsample("stride2")
def stride2(cfg: StridedConvConfig, point: DownsamplePoint) -> Downsample:
    """A learned stride-2 convolution in place of the pool (All-CNN, Springenberg et al. 2015)."""
    c = point.channels
    return added(*own_conv(cfg, c, c, cfg.kernel_size, stride=2))


@register_downsample("stride2_fold")
def stride2_fold(cfg: FoldedStrideConfig, point: DownsamplePoint) -> Downsample:
    """No layer of its own: the preceding convolution runs at stride 2 (seed 001)."""
    return Downsample(conv_stride=2, layer=nn.Identity())


@register_downsample("space_to_depth")
def space_to_depth(cfg: SpaceToDepthConfig, point: DownsamplePoint) -> Downsample:
    """PixelUnshuffle(2), then a conv from 4C back to C channels (SPD-Conv, Sunkara & Luo 2022)."""
    c = point.channels
    return added(EvenSize(point.ceil_mode()), nn.PixelUnshuffle(2),
                  *own_conv(cfg, 4 * c, c, cfg.kernel_size))
