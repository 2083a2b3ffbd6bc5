"""What every operator's schema shares: the keys every operator has, and its family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from downsample_study.checks import at_least, probability
from downsample_study.choices import Choice


class Family(Choice):
    """What an operator does to the map it halves: the report groups and colours by it."""

    strided = "strided"  # keeps every other sample, after a conv or a rearrangement
    fixed_lowpass = "fixed low-pass"  # a fixed filter (average, binomial, wavelet) first
    learned_lowpass = "learned low-pass"  # a low-pass filter predicted from the input
    polyphase = "polyphase"  # keeps the phase the input chooses (by a norm, or learned)
    frequency = "frequency"  # crops the spectrum (Fourier)
    importance = "importance"  # weights each window's values by their size (max: all on one)
    stochastic = "stochastic"  # draws what it keeps in training; a fixed rule in evaluation
    learned_mix = "learned mix"  # a learned mix of pooling operators
    other = "other"  # an operator that does not say (a plug-in without a family)


@dataclass
class DownsampleConfig:
    """Keys every operator has: ``batch_norm`` and ``dropout`` are swept like the operator."""

    name: str = MISSING
    # BatchNorm after the model's convs and those an operator adds (stride2, convpool, blurpool's
    # conv, space_to_depth), so a BatchNorm sweep treats learned and fixed operators alike
    batch_norm: bool = False
    dropout: float = 0.0  # Dropout probability after each downsampling point
    # whether the operator's layers have parameters of their own: a learned downsampling
    learned: ClassVar[bool] = False
    family: ClassVar[Family] = Family.other
    # whether its paper claims exact invariance to circular shifts, in the regime where a
    # network is invariant to circular shifts by its total stride (circular padding, global
    # pooling): APS's regime, which ``shift.regime`` records
    shift_invariant: ClassVar[bool] = False

    def __post_init__(self) -> None:
        probability("downsample.dropout", self.dropout)


@dataclass
class PoolConfig(DownsampleConfig):
    kernel_size: int = 2  # the pooling window
    stride: int = 2  # the step of the window: 2 halves the feature map

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("downsample.kernel_size", self.kernel_size, 1)
        at_least("downsample.stride", self.stride, 1)


class APSPool(Choice):
    max = "max"  # a circular max pool (kernel 2, stride 1) first, in place of max pooling
    none = "none"  # the conv output itself is subsampled, in place of a strided conv
