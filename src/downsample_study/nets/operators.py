"""The experimental variable: downsampling operators, behind one registry.

At each point a model calls ``create_downsample(cfg, point)`` (cf. timm's ``create_aa``) for the
stride of the *preceding* conv and the layer after it, so ``stride2_fold`` can fold the stride
into that conv. A new operator: a ``@register_downsample`` builder and a ``conf/downsample/`` file.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from downsample_study.nets.configs import (
    DOWNSAMPLES,
    APSConfig,
    APSPool,
    BlurPoolConfig,
    BlurVariant,
    ConvThenPoolConfig,
    DownsampleConfig,
    LPPoolConfig,
    MixedPoolConfig,
    MixedPoolGate,
    PoolConfig,
    SpaceToDepthConfig,
    StridedConvConfig,
)
from downsample_study.nets.layers import (
    BlurPool,
    DownsampleLayer,
    EvenSize,
    MixedPool,
    PolyphaseSampling,
)
from downsample_study.nets.points import Downsample, DownsamplePoint, Stands

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


def _added(*layers: nn.Module) -> Downsample:
    return Downsample(conv_stride=1, layer=DownsampleLayer(*layers))


def _own_conv(cfg: DownsampleConfig, c_in: int, c_out: int, kernel: int,
              stride: int = 1) -> list[nn.Module]:
    """A convolution the operator adds (padding kernel // 2), with BatchNorm after it when
    ``downsample.batch_norm`` is on."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    return [conv, nn.BatchNorm2d(c_out)] if cfg.batch_norm else [conv]


@register_downsample("maxpool")
def maxpool(cfg: PoolConfig, point: DownsamplePoint) -> Downsample:
    """Max pooling (seeds 000, 001, 004)."""
    return _added(nn.MaxPool2d(cfg.kernel_size, cfg.stride,
                               ceil_mode=point.ceil_mode(cfg.kernel_size)))


@register_downsample("avgpool")
def avgpool(cfg: PoolConfig, point: DownsamplePoint) -> Downsample:
    """Average pooling (seed 002, LeNet-5 as in LeCun et al. 1998 without the trainable gain)."""
    return _added(nn.AvgPool2d(cfg.kernel_size, cfg.stride,
                               ceil_mode=point.ceil_mode(cfg.kernel_size)))


@register_downsample("stride2")
def stride2(cfg: StridedConvConfig, point: DownsamplePoint) -> Downsample:
    """A learned stride-2 convolution in place of the pool (All-CNN, Springenberg et al. 2015)."""
    c = point.channels
    return _added(*_own_conv(cfg, c, c, cfg.kernel_size, stride=2))


@register_downsample("stride2_fold")
def stride2_fold(cfg: DownsampleConfig, point: DownsamplePoint) -> Downsample:
    """No layer of its own: the preceding convolution runs at stride 2 (seed 001)."""
    return Downsample(conv_stride=2, layer=nn.Identity())


@register_downsample("convpool")
def convpool(cfg: ConvThenPoolConfig, point: DownsamplePoint) -> Downsample:
    """An extra C→C conv + ReLU before the max pool (ConvPool-CNN, Springenberg et al. 2015)."""
    c = point.channels
    return _added(
        *_own_conv(cfg, c, c, cfg.conv_kernel_size),
        nn.ReLU(),
        nn.MaxPool2d(cfg.kernel_size, cfg.stride, ceil_mode=point.ceil_mode(cfg.kernel_size)),
    )


@register_downsample("blurpool")
def blurpool(cfg: BlurPoolConfig, point: DownsamplePoint) -> Downsample:
    """Anti-aliased downsampling: MaxBlurPool, BlurPool or ConvBlurPool (Zhang, ICML 2019)."""
    c = point.channels
    blur = BlurPool(c, cfg.filter_size)
    if cfg.variant == BlurVariant.avg or (cfg.variant == BlurVariant.max
                                          and point.stands_for == Stands.conv):
        return _added(blur)
    if cfg.variant == BlurVariant.conv:
        return _added(*_own_conv(cfg, c, c, 3), nn.ReLU(), blur)
    # Zhang's MaxBlurPool as it is on even maps; where a point rounds up, an odd side is
    # first padded by repeating its last row/column, so that window is the max of what is in it
    edge = [EvenSize(ceil_mode=True, mode="replicate")] if point.ceil_mode() else []
    return _added(*edge, nn.MaxPool2d(2, stride=1), blur)


@register_downsample("lppool")
def lppool(cfg: LPPoolConfig, point: DownsamplePoint) -> Downsample:
    """Power-average pooling (Σ xᵖ)^(1/p) per window (torch's LPPool2d; Sermanet et al. 2012).

    torch does not take |x|, so for p not an even integer the input must be non-negative (it is
    after a ReLU). At a ceil-mode point an overhanging window is scaled as if full.
    """
    return _added(nn.LPPool2d(cfg.p, cfg.kernel_size, cfg.stride,
                              ceil_mode=point.ceil_mode(cfg.kernel_size)))


@register_downsample("mixedpool")
def mixedpool(cfg: MixedPoolConfig, point: DownsamplePoint) -> Downsample:
    """Mixed max-average pooling, learned gate (Lee, Gallagher & Tu, AISTATS 2016)."""
    gates = point.channels if cfg.gate == MixedPoolGate.channel else 1
    return _added(MixedPool(gates, cfg.kernel_size, cfg.stride, point.ceil_mode(cfg.kernel_size)))


@register_downsample("space_to_depth")
def space_to_depth(cfg: SpaceToDepthConfig, point: DownsamplePoint) -> Downsample:
    """PixelUnshuffle(2), then a conv from 4C back to C channels (SPD-Conv, Sunkara & Luo 2022)."""
    c = point.channels
    return _added(EvenSize(point.ceil_mode()), nn.PixelUnshuffle(2),
                  *_own_conv(cfg, 4 * c, c, cfg.kernel_size))


@register_downsample("aps")
def aps(cfg: APSConfig, point: DownsamplePoint) -> Downsample:
    """Adaptive polyphase sampling (Chaman & Dokmanić, CVPR 2021)."""
    if cfg.pool == APSPool.none:
        return _added(PolyphaseSampling())
    # circular padding keeps the stride-1 max pool equivariant to circular shifts
    return _added(nn.CircularPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, stride=1), PolyphaseSampling())
