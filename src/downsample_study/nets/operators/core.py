"""The operators' registry and what their builders share: ``create_downsample(cfg, point)``
gives a point the stride of the *preceding* conv and the layer after it (cf. timm's
``create_aa``), so ``stride2_fold`` can fold the stride into that conv."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from downsample_study.nets.downsample_base import DownsampleConfig
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.nets.layers import DownsampleLayer
from downsample_study.nets.points import Downsample, DownsamplePoint

Builder = Callable[[DownsampleConfig, DownsamplePoint], Downsample]


def register_downsample(name: str, schema: type | None = None) -> Callable[[Builder], Builder]:
    """Register a builder as operator ``name``; ``schema``, its config dataclass (default:
    the built-in's, else ``DownsampleConfig``)."""
    return DOWNSAMPLES.register(name, schema)


def available_downsamples() -> list[str]:
    return DOWNSAMPLES.names()


def downsample_config(name: str, **options) -> DownsampleConfig:
    """The config of operator ``name`` with its defaults, e.g. for building a model by hand."""
    return DOWNSAMPLES.schema(name)(name=name, **options)


def create_downsample(cfg: DownsampleConfig, point: DownsamplePoint) -> Downsample:
    return DOWNSAMPLES[cfg.name](cfg, point)


def added(*layers: nn.Module) -> Downsample:
    return Downsample(conv_stride=1, layer=DownsampleLayer(*layers))


def own_conv(cfg: DownsampleConfig, c_in: int, c_out: int, kernel: int,
              stride: int = 1) -> list[nn.Module]:
    """A convolution the operator adds (padding kernel // 2), with BatchNorm after it when
    ``downsample.batch_norm`` is on."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    return [conv, nn.BatchNorm2d(c_out)] if cfg.batch_norm else [conv]


