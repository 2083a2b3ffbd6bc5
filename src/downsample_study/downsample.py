"""The experimental variable: downsampling operators, behind one registry.

A model asks for a downsampling step at each point where its feature map should halve, by
calling ``create_downsample(cfg, point)`` (cf. timm's ``create_aa``). The operator answers with
a ``Downsample``: the stride the *preceding* convolution should use, and the layer that follows
that convolution. Pooling keeps the conv at stride 1 and adds a pool; ``stride2`` adds a learned
stride-2 conv; ``stride2_fold`` adds nothing and moves the stride into the preceding conv.

A new operator is one builder function decorated with ``@register_downsample`` (plus its
config dataclass when it has options of its own) and one YAML file in ``conf/downsample/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from omegaconf import MISSING
from torch import nn


@dataclass
class DownsampleConfig:
    """Keys every operator has: ``batch_norm`` and ``dropout`` are swept like the operator."""

    name: str = MISSING
    batch_norm: bool = False  # BatchNorm after the convolutions of the model's conv blocks
    dropout: float = 0.0  # Dropout probability after each downsampling point


@dataclass
class PoolConfig(DownsampleConfig):
    kernel_size: int = 2
    stride: int = 2


@dataclass
class StridedConvConfig(DownsampleConfig):
    kernel_size: int = 3  # padding = kernel_size // 2, so even maps halve exactly


@dataclass(frozen=True)
class DownsamplePoint:
    """What the model tells the operator about the place it is asked to downsample."""

    channels: int
    # round the output size up (Paddle's pooling; seed 004 needs it to pool a 1x1 map)
    ceil_mode: bool = False


class Downsample(NamedTuple):
    conv_stride: int  # the stride the preceding convolution should use
    layer: nn.Module  # applied after that convolution's block (a DownsampleLayer or Identity)


class DownsampleLayer(nn.Sequential):
    """Marks the layers an operator adds: their parameters are ``params/downsample``."""


Builder = Callable[[DownsampleConfig, DownsamplePoint], Downsample]
_BUILDERS: dict[str, Builder] = {}
DOWNSAMPLE_SCHEMAS: dict[str, type] = {}


def register_downsample(name: str, schema: type = DownsampleConfig):
    def decorate(builder: Builder) -> Builder:
        _BUILDERS[name] = builder
        DOWNSAMPLE_SCHEMAS[name] = schema
        return builder

    return decorate


def available_downsamples() -> list[str]:
    return sorted(_BUILDERS)


def create_downsample(cfg: DownsampleConfig, point: DownsamplePoint) -> Downsample:
    try:
        builder = _BUILDERS[cfg.name]
    except KeyError:
        raise KeyError(
            f"unknown downsample {cfg.name!r}; allowed: {', '.join(available_downsamples())}"
        ) from None
    return builder(cfg, point)


def _added(*layers: nn.Module) -> Downsample:
    return Downsample(conv_stride=1, layer=DownsampleLayer(*layers))


@register_downsample("maxpool", PoolConfig)
def maxpool(cfg: PoolConfig, point: DownsamplePoint) -> Downsample:
    """Max pooling (seeds 000, 001, 004)."""
    return _added(nn.MaxPool2d(cfg.kernel_size, cfg.stride, ceil_mode=point.ceil_mode))


@register_downsample("avgpool", PoolConfig)
def avgpool(cfg: PoolConfig, point: DownsamplePoint) -> Downsample:
    """Average pooling (seed 002, LeNet-5 as in LeCun et al. 1998 without the trainable gain)."""
    return _added(nn.AvgPool2d(cfg.kernel_size, cfg.stride, ceil_mode=point.ceil_mode))


@register_downsample("stride2", StridedConvConfig)
def stride2(cfg: StridedConvConfig, point: DownsamplePoint) -> Downsample:
    """A learned stride-2 convolution in place of the pool (All-CNN, Springenberg et al. 2015)."""
    c = point.channels
    return _added(nn.Conv2d(c, c, cfg.kernel_size, stride=2, padding=cfg.kernel_size // 2))


@register_downsample("stride2_fold")
def stride2_fold(cfg: DownsampleConfig, point: DownsamplePoint) -> Downsample:
    """No layer of its own: the preceding convolution runs at stride 2 (seed 001)."""
    return Downsample(conv_stride=2, layer=nn.Identity())
