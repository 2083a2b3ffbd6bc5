"""The operators' registry, each name with its schema, free of torch: Hydra composes against
them before torch loads. Here the first ten operators' schemas; the later ones' are in
``later_downsample_configs.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from downsample_study.checks import above, at_least
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
from downsample_study.nets.downsample_base import APSPool, DownsampleConfig, Family, PoolConfig
from downsample_study.nets.later_downsample_configs import (
    ASAPConfig,
    DWTPoolConfig,
    FLCPoolConfig,
    FractionalPoolConfig,
    LIPConfig,
    LPSConfig,
    PASAConfig,
    SoftPoolConfig,
    SpectralPoolConfig,
    StochasticPoolConfig,
    TIPSConfig,
)
from downsample_study.registry import Registry


@dataclass
class MaxPoolConfig(PoolConfig):
    family: ClassVar[Family] = Family.importance


@dataclass
class AvgPoolConfig(PoolConfig):
    family: ClassVar[Family] = Family.fixed_lowpass


@dataclass
class FoldedStrideConfig(DownsampleConfig):
    """``stride2_fold``: no options of its own."""

    family: ClassVar[Family] = Family.strided


@dataclass
class StridedConvConfig(DownsampleConfig):
    kernel_size: int = 3  # padding = kernel_size // 2, so even maps halve exactly
    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.strided

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("downsample.kernel_size", self.kernel_size, 1)


@dataclass
class ConvThenPoolConfig(PoolConfig):
    conv_kernel_size: int = 3  # the extra C -> C convolution, padding conv_kernel_size // 2
    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.importance  # a max pool after its conv

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("downsample.conv_kernel_size", self.conv_kernel_size, 1)


class BlurVariant(Choice):
    # MaxBlurPool (max pool stride 1, then blur stride 2) in place of a pool; at a point that
    # stands for a strided conv, the blur alone after it (Zhang's ConvBlurPool, as his ResNets)
    max = "max"
    # BlurPool alone, in place of average pooling or of a folded stride (the conv before the
    # point runs at stride 1 and the blur subsamples)
    avg = "avg"
    conv = "conv"  # a learned C -> C 3x3 conv at stride 1, ReLU, BlurPool, in place of stride2


@dataclass
class BlurPoolConfig(DownsampleConfig):
    variant: BlurVariant = BlurVariant.max  # which reference operator it replaces (above)
    filter_size: int = 3  # binomial filter: 3 -> [1, 2, 1], 4 -> [1, 3, 3, 1], 5 -> [1, 4, 6, 4, 1]
    family: ClassVar[Family] = Family.fixed_lowpass

    def __post_init__(self) -> None:
        super().__post_init__()
        self.variant = as_choice(BlurVariant, self.variant, "downsample.variant")
        at_least("downsample.filter_size", self.filter_size, 1)

    @property
    def learned(self) -> bool:
        return self.variant == BlurVariant.conv


@dataclass
class LPPoolConfig(PoolConfig):
    p: float = 2.0  # 1: sum pooling, 2: l2 pooling, large: towards max pooling
    family: ClassVar[Family] = Family.importance

    def __post_init__(self) -> None:
        super().__post_init__()
        above("downsample.p", self.p, 0)


class MixedPoolGate(Choice):
    layer = "layer"  # one learned gate per downsampling point
    channel = "channel"  # one per channel


@dataclass
class MixedPoolConfig(PoolConfig):
    gate: MixedPoolGate = MixedPoolGate.layer  # one learned max/avg mix per layer or per channel
    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.learned_mix

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gate = as_choice(MixedPoolGate, self.gate, "downsample.gate")


@dataclass
class SpaceToDepthConfig(DownsampleConfig):
    kernel_size: int = 1  # of the conv from 4C back to C channels: 1 (default) or 3 (SPD-Conv)
    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.strided  # a lossless rearrangement, then a conv

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"downsample.kernel_size: must be odd and >= 1 (1 or 3), got "
                              f"{self.kernel_size}")


@dataclass
class APSConfig(DownsampleConfig):
    pool: APSPool = APSPool.max  # the pooling before the polyphase choice: max or none
    shift_invariant: ClassVar[bool] = True
    family: ClassVar[Family] = Family.polyphase

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pool = as_choice(APSPool, self.pool, "downsample.pool")


DOWNSAMPLES: Registry = Registry("downsample", DownsampleConfig,
                                 "downsample_study.nets.operators", {
    "maxpool": MaxPoolConfig, "avgpool": AvgPoolConfig, "stride2": StridedConvConfig,
    "stride2_fold": FoldedStrideConfig, "convpool": ConvThenPoolConfig,
    "blurpool": BlurPoolConfig, "lppool": LPPoolConfig, "mixedpool": MixedPoolConfig,
    "space_to_depth": SpaceToDepthConfig, "aps": APSConfig,
    "lps": LPSConfig, "tips": TIPSConfig,
    "softpool": SoftPoolConfig, "lip": LIPConfig,
    "stochasticpool": StochasticPoolConfig, "fractionalpool": FractionalPoolConfig,
    "flcpool": FLCPoolConfig, "asap": ASAPConfig, "spectralpool": SpectralPoolConfig,
    "dwtpool": DWTPoolConfig, "pasa": PASAConfig,
})
