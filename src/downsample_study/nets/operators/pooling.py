"""Pooling operators: a window's max, mean, power mean or a learned mix of them."""

from __future__ import annotations

from torch import nn

from downsample_study.nets.downsample_configs import (
    AvgPoolConfig,
    ConvThenPoolConfig,
    LPPoolConfig,
    MaxPoolConfig,
    MixedPoolConfig,
    MixedPoolGate,
)
from downsample_study.nets.layers import MixedPool
from downsample_study.nets.operators.core import added, own_conv, register_downsample
from downsample_study.nets.points import Downsample, DownsamplePoint


@register_downsample("maxpool")
def maxpool(cfg: MaxPoolConfig, point: DownsamplePoint) -> Downsample:
    """Max pooling (seeds 000, 001, 004)."""
    return added(nn.MaxPool2d(cfg.kernel_size, cfg.stride,
                               ceil_mode=point.ceil_mode(cfg.kernel_size)))


@register_downsample("avgpool")
def avgpool(cfg: AvgPoolConfig, point: DownsamplePoint) -> Downsample:
    """Average pooling (seed 002, LeNet-5 as in LeCun et al. 1998 without the trainable gain)."""
    return added(nn.AvgPool2d(cfg.kernel_size, cfg.stride,
                               ceil_mode=point.ceil_mode(cfg.kernel_size)))


@register_downsample("convpool")
def convpool(cfg: ConvThenPoolConfig, point: DownsamplePoint) -> Downsample:
    """An extra C→C conv + ReLU before the max pool (ConvPool-CNN, Springenberg et al. 2015)."""
    c = point.channels
    return added(
        *own_conv(cfg, c, c, cfg.conv_kernel_size),
        nn.ReLU(),
        nn.MaxPool2d(cfg.kernel_size, cfg.stride, ceil_mode=point.ceil_mode(cfg.kernel_size)),
    )


@register_downsample("lppool")
def lppool(cfg: LPPoolConfig, point: DownsamplePoint) -> Downsample:
    """Power-average pooling (Σ xᵖ)^(1/p) per window (torch's LPPool2d; Sermanet et al. 2012).

    torch does not take |x|, so for p not an even integer the input must be non-negative (it is
    after a ReLU). At a ceil-mode point an overhanging window is scaled as if full.
    """
    return added(nn.LPPool2d(cfg.p, cfg.kernel_size, cfg.stride,
                              ceil_mode=point.ceil_mode(cfg.kernel_size)))


@register_downsample("mixedpool")
def mixedpool(cfg: MixedPoolConfig, point: DownsamplePoint) -> Downsample:
    """Mixed max-average pooling, learned gate (Lee, Gallagher & Tu, AISTATS 2016)."""
    gates = point.channels if cfg.gate == MixedPoolGate.channel else 1
    return added(MixedPool(gates, cfg.kernel_size, cfg.stride, point.ceil_mode(cfg.kernel_size)))
