"""The experimental variable: downsampling operators, behind one registry.

A model asks for a downsampling step at each point where its feature map should halve, by
calling ``create_downsample(cfg, point)`` (cf. timm's ``create_aa``). The operator answers with
a ``Downsample``: the stride the *preceding* convolution should use, and the layer that follows
that convolution. Pooling keeps the conv at stride 1 and adds a pool; ``stride2`` adds a learned
stride-2 conv; ``stride2_fold`` adds nothing and moves the stride into the preceding conv.
Beyond the seeds: ``convpool`` (All-CNN's parameter control), ``blurpool`` (anti-aliasing),
``lppool``, ``mixedpool``, ``space_to_depth`` and ``aps`` (adaptive polyphase sampling).

A new operator is one builder function decorated with ``@register_downsample`` (plus its
config dataclass when it has options of its own) and one YAML file in ``conf/downsample/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from downsample_study.config import ConfigError
from downsample_study.registry import Registry


@dataclass
class DownsampleConfig:
    """Keys every operator has: ``batch_norm`` and ``dropout`` are swept like the operator."""

    name: str = MISSING
    batch_norm: bool = False  # BatchNorm after the convolutions of the model's conv blocks
    dropout: float = 0.0  # Dropout probability after each downsampling point
    # whether the operator's layers have parameters of their own: a learned downsampling
    learned: ClassVar[bool] = False


@dataclass
class PoolConfig(DownsampleConfig):
    kernel_size: int = 2
    stride: int = 2


@dataclass
class StridedConvConfig(DownsampleConfig):
    kernel_size: int = 3  # padding = kernel_size // 2, so even maps halve exactly
    learned: ClassVar[bool] = True


@dataclass
class ConvThenPoolConfig(PoolConfig):
    conv_kernel_size: int = 3  # the extra C -> C convolution, padding conv_kernel_size // 2
    learned: ClassVar[bool] = True


@dataclass
class BlurPoolConfig(DownsampleConfig):
    # max: MaxBlurPool (max pool stride 1, then blur stride 2), in place of max pooling;
    # avg: BlurPool alone, in place of average pooling or of a folded stride (the conv before
    #      the point runs at stride 1 and the blur subsamples);
    # conv: a learned C -> C 3x3 conv at stride 1, ReLU, BlurPool, in place of stride2
    variant: str = "max"
    filter_size: int = 3  # binomial filter: 3 -> [1, 2, 1], 4 -> [1, 3, 3, 1], 5 -> [1, 4, 6, 4, 1]

    @property
    def learned(self) -> bool:
        return self.variant == "conv"


@dataclass
class LPPoolConfig(PoolConfig):
    p: float = 2.0  # 1: sum pooling, 2: l2 pooling, large: towards max pooling


@dataclass
class MixedPoolConfig(PoolConfig):
    gate: str = "layer"  # layer: one learned gate per downsampling point; channel: one per channel
    learned: ClassVar[bool] = True


@dataclass
class SpaceToDepthConfig(DownsampleConfig):
    kernel_size: int = 1  # of the conv from 4C back to C channels: 1 (default) or 3 (SPD-Conv)
    learned: ClassVar[bool] = True


@dataclass
class APSConfig(DownsampleConfig):
    # max: a circular max pool (kernel 2, stride 1) first, in place of max pooling;
    # none: the conv output itself is subsampled, in place of a strided conv
    pool: str = "max"


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
DOWNSAMPLES: Registry[Builder] = Registry("downsample")
DOWNSAMPLE_SCHEMAS = DOWNSAMPLES.schemas


def register_downsample(name: str, schema: type = DownsampleConfig):
    return DOWNSAMPLES.register(name, schema)


def available_downsamples() -> list[str]:
    return DOWNSAMPLES.names()


def create_downsample(cfg: DownsampleConfig, point: DownsamplePoint) -> Downsample:
    return DOWNSAMPLES[cfg.name](cfg, point)


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


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"downsample.{key}: unknown value {value!r}; allowed: {', '.join(allowed)}"
        )


@register_downsample("convpool", ConvThenPoolConfig)
def convpool(cfg: ConvThenPoolConfig, point: DownsamplePoint) -> Downsample:
    """An extra C→C conv + ReLU before the max pool (ConvPool-CNN, Springenberg et al. 2015)."""
    c, k = point.channels, cfg.conv_kernel_size
    return _added(
        nn.Conv2d(c, c, k, padding=k // 2),
        nn.ReLU(),
        nn.MaxPool2d(cfg.kernel_size, cfg.stride, ceil_mode=point.ceil_mode),
    )


class BlurPool(nn.Module):
    """Low-pass filter, then subsample by 2 (Zhang, "Making convnets shift-invariant again", 2019).

    The filter is the normalised outer product of a binomial row, fixed (a buffer), applied
    depthwise. Padding follows Zhang's code ((f − 1) // 2 before, f // 2 after, so an N-map
    becomes ceil(N / 2)), by reflection when the map is larger than the padding and by
    replicating the edge when it is not (reflection is undefined there; replication, unlike
    zeros, still keeps a constant map constant). Hand-written because antialiased-cnns'
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


BLURPOOL_VARIANTS = ("max", "avg", "conv")


@register_downsample("blurpool", BlurPoolConfig)
def blurpool(cfg: BlurPoolConfig, point: DownsamplePoint) -> Downsample:
    """Anti-aliased downsampling: MaxBlurPool, BlurPool or ConvBlurPool (Zhang, ICML 2019)."""
    _choice("variant", cfg.variant, BLURPOOL_VARIANTS)
    if cfg.filter_size < 1:
        raise ConfigError(f"downsample.filter_size: must be >= 1, got {cfg.filter_size}")
    c = point.channels
    blur = BlurPool(c, cfg.filter_size)
    if cfg.variant == "avg":
        return _added(blur)
    if cfg.variant == "conv":
        return _added(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), blur)
    # a ceil-mode point keeps the last row/column: its window takes the max of what is inside
    edge = [nn.ReplicationPad2d((0, 1, 0, 1))] if point.ceil_mode else []
    return _added(*edge, nn.MaxPool2d(2, stride=1), blur)


@register_downsample("lppool", LPPoolConfig)
def lppool(cfg: LPPoolConfig, point: DownsamplePoint) -> Downsample:
    """Power-average pooling (Σ xᵖ)^(1/p) per window (torch's LPPool2d; Sermanet et al. 2012).

    torch raises x to the power p without taking |x|: for a p that is not an even integer the
    input must be non-negative (it is after a ReLU). At a ceil-mode point a window overhanging
    the edge is scaled as if full.
    """
    if cfg.p <= 0:
        raise ConfigError(f"downsample.p: must be > 0, got {cfg.p}")
    return _added(nn.LPPool2d(cfg.p, cfg.kernel_size, cfg.stride, ceil_mode=point.ceil_mode))


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


MIXEDPOOL_GATES = ("layer", "channel")


@register_downsample("mixedpool", MixedPoolConfig)
def mixedpool(cfg: MixedPoolConfig, point: DownsamplePoint) -> Downsample:
    """Mixed max-average pooling, learned gate (Lee, Gallagher & Tu, AISTATS 2016)."""
    _choice("gate", cfg.gate, MIXEDPOOL_GATES)
    gates = point.channels if cfg.gate == "channel" else 1
    return _added(MixedPool(gates, cfg.kernel_size, cfg.stride, point.ceil_mode))


class EvenSize(nn.Module):
    """Make a map's height and width even for a 2×2 rearrangement.

    Like a pool's output size: a floor-mode point drops the last odd row/column, a ceil-mode
    point zero-pads one.
    """

    def __init__(self, ceil_mode: bool):
        super().__init__()
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.ceil_mode:
            return F.pad(x, (0, w % 2, 0, h % 2))
        return x[..., : h - h % 2, : w - w % 2]


@register_downsample("space_to_depth", SpaceToDepthConfig)
def space_to_depth(cfg: SpaceToDepthConfig, point: DownsamplePoint) -> Downsample:
    """PixelUnshuffle(2), then a conv from 4C back to C channels (SPD-Conv, Sunkara & Luo 2022)."""
    k = cfg.kernel_size
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"downsample.kernel_size: must be odd and >= 1 (1 or 3), got {k}")
    c = point.channels
    return _added(
        EvenSize(point.ceil_mode), nn.PixelUnshuffle(2), nn.Conv2d(4 * c, c, k, padding=k // 2)
    )


class PolyphaseSampling(nn.Module):
    """Keep, per sample, the stride-2 polyphase component with the largest l2 norm.

    Circularly shifting the input permutes (and rolls) its four components, so the choice
    follows the content and the output of a shifted input is a shifted output: exact
    invariance up to the selected phase. A map with an odd side is first circularly padded by
    one row/column (so the output is ceil(N / 2)); that map has no exact invariance.
    """

    def __init__(self):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="circular")
        phases = self.unshuffle(x).unflatten(1, (c, 4)).transpose(1, 2)  # N, 4, C, H/2, W/2
        index = phases.pow(2).sum(dim=(2, 3, 4)).argmax(dim=1)
        return phases[torch.arange(n, device=x.device), index]


APS_POOLS = ("max", "none")


@register_downsample("aps", APSConfig)
def aps(cfg: APSConfig, point: DownsamplePoint) -> Downsample:
    """Adaptive polyphase sampling (Chaman & Dokmanić, CVPR 2021)."""
    _choice("pool", cfg.pool, APS_POOLS)
    if cfg.pool == "none":
        return _added(PolyphaseSampling())
    # circular padding keeps the stride-1 max pool equivariant to circular shifts
    return _added(nn.CircularPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, stride=1), PolyphaseSampling())
