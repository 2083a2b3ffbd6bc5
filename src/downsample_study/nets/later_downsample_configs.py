"""The schemas of the operators that came with the later papers: LPS, TIPS, SoftPool, LIP,
stochastic and fractional pooling, FLC, ASAP, spectral and wavelet pooling, PASA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from downsample_study.checks import above, at_least, probability
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
from downsample_study.nets.downsample_base import APSPool, DownsampleConfig, Family, PoolConfig


class LPSPadding(Choice):
    """Conv2d's padding modes, for LPS's logits network."""

    circular = "circular"  # the paper's: the logits follow the phases under circular shifts
    zeros = "zeros"
    reflect = "reflect"
    replicate = "replicate"


@dataclass
class LPSConfig(DownsampleConfig):
    pool: APSPool = APSPool.max  # the pooling before the polyphase choice: max or none (as aps)
    hidden_channels: int = 0  # of the logits network's two 3x3 convs; 0: the point's (the paper's)
    gumbel_tau: float = 1.0  # Gumbel-softmax temperature in training (the paper's initial value)
    logits_padding: LPSPadding = LPSPadding.circular  # the logits convs' padding mode
    learned: ClassVar[bool] = True
    shift_invariant: ClassVar[bool] = True
    family: ClassVar[Family] = Family.polyphase

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pool = as_choice(APSPool, self.pool, "downsample.pool")
        at_least("downsample.hidden_channels", self.hidden_channels, 0)
        above("downsample.gumbel_tau", self.gumbel_tau, 0)
        self.logits_padding = as_choice(LPSPadding, self.logits_padding,
                                        "downsample.logits_padding")


class TIPSShift(Choice):
    circular = "circular"  # torch.roll (the training script's choice)
    standard = "standard"  # rolled, the rows and columns that wrap around set to zero


@dataclass
class TIPSConfig(DownsampleConfig):
    kernel_size: int = 3  # of the depthwise conv whose map gives the phase weights
    # L_undo's weight; the reference weighs the cross-entropy 1 - alpha, here it keeps 1 and
    # the terms are divided by 1 - alpha (the same objective, scaled)
    alpha: float = 0.35
    fm_weight: float = 1.0  # L_FM's weight (pushes each channel's phase weights to one phase)
    max_shift: int = 8  # L_undo's shift range, [-max_shift, max_shift]² (reference: side // 4)
    shift: TIPSShift = TIPSShift.circular  # how L_undo's shift fills what it moves in
    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.polyphase

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"downsample.kernel_size: must be odd and >= 1, got "
                              f"{self.kernel_size}")
        probability("downsample.alpha", self.alpha)
        at_least("downsample.fm_weight", self.fm_weight, 0)
        at_least("downsample.max_shift", self.max_shift, 0)
        self.shift = as_choice(TIPSShift, self.shift, "downsample.shift")


@dataclass
class SoftPoolConfig(PoolConfig):
    """``softpool``: each window's values weighted by their softmax, Σ e^{aᵢ} aᵢ / Σ e^{aⱼ}."""

    family: ClassVar[Family] = Family.importance


@dataclass
class LIPConfig(DownsampleConfig):
    """``lip``: a 3×3 window (stride 2, padding 1) weighted by a learned importance map: the
    logit module LIP-ResNet puts in place of its max pool (a 3×3 conv, InstanceNorm, 12·σ)."""

    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.importance


@dataclass
class StochasticPoolConfig(PoolConfig):
    """``stochasticpool``: training keeps one value per window, drawn with probability
    aᵢ / Σ aⱼ; evaluation keeps the weighting Σ (aᵢ / Σ aⱼ) aᵢ."""

    family: ClassVar[Family] = Family.stochastic


@dataclass
class FractionalPoolConfig(DownsampleConfig):
    """``fractionalpool``: max pooling over pseudo-random regions (torch's
    FractionalMaxPool2d) at a ratio of exactly 1/2; fixed regions in evaluation."""

    kernel_size: int = 2  # the window at each pseudo-random start (3: overlapping windows)
    family: ClassVar[Family] = Family.stochastic

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("downsample.kernel_size", self.kernel_size, 1)


@dataclass
class FLCPoolConfig(DownsampleConfig):
    """``flcpool``: no options of its own."""

    family: ClassVar[Family] = Family.frequency


@dataclass
class ASAPConfig(DownsampleConfig):
    """``asap``: no options of its own."""

    family: ClassVar[Family] = Family.frequency


@dataclass
class SpectralPoolConfig(DownsampleConfig):
    """``spectralpool``: no options of its own (the paper's output size is a point's halving)."""

    family: ClassVar[Family] = Family.frequency


BIORTHOGONAL_ORDERS = ("1.1", "1.3", "1.5", "2.2", "2.4", "2.6", "2.8", "3.1", "3.3", "3.5", "3.7",
                       "3.9", "4.4", "5.5", "6.8")
# PyWavelets' discrete wavelets (``pywt.wavelist(kind="discrete")``, tested), listed here so
# that composing a config does not import PyWavelets
DISCRETE_WAVELETS = frozenset({
    "haar", "dmey", *(f"db{n}" for n in range(1, 39)), *(f"sym{n}" for n in range(2, 21)),
    *(f"coif{n}" for n in range(1, 18)),
    *(f"{kind}{order}" for kind in ("bior", "rbio") for order in BIORTHOGONAL_ORDERS)})


def pywt_wavelet_name(name: str) -> str:
    """PyWavelets' name of a wavelet: WaveCNet's paper calls Cohen's biorX.Y chX.Y."""
    return "bior" + name[2:] if name.startswith("ch") else name


@dataclass
class DWTPoolConfig(DownsampleConfig):
    # whose low-pass filter gives the LL band: a PyWavelets discrete wavelet (haar, db2, sym4,
    # bior2.2, ...; pywt.wavelist(kind="discrete")) or the paper's chX.Y for biorX.Y
    wavelet: str = "bior3.3"  # the paper's ch3.3, the one the authors' README trains with
    family: ClassVar[Family] = Family.fixed_lowpass

    def __post_init__(self) -> None:
        super().__post_init__()
        if pywt_wavelet_name(self.wavelet) not in DISCRETE_WAVELETS:
            raise ConfigError(f"downsample.wavelet: a discrete wavelet of PyWavelets is required "
                              f"(haar, db2, sym4, coif1, bior2.2, ch3.3, ...), got "
                              f"{self.wavelet!r}")


class PASASoftmax(Choice):
    # over all groups' g·k² weights at once, as the released code (Downsample_PASA_group_softmax)
    # does: each group's filter sums to its share of 1 (the same where groups = 1)
    joint = "joint"
    group = "group"  # over each group's k² weights: each group's filter sums to 1


@dataclass
class PASAConfig(DownsampleConfig):
    kernel_size: int = 3  # of the k×k low-pass filter predicted at each pixel: odd, 3 or 5
    # channel groups, each with its own predicted filter (the released models: 8); at a point
    # whose channels it does not divide, their greatest common divisor
    groups: int = 8
    softmax: PASASoftmax = PASASoftmax.joint  # which weights the softmax normalises together
    learned: ClassVar[bool] = True
    family: ClassVar[Family] = Family.learned_lowpass

    def __post_init__(self) -> None:
        super().__post_init__()
        self.softmax = as_choice(PASASoftmax, self.softmax, "downsample.softmax")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ConfigError(f"downsample.kernel_size: must be odd and >= 3 (3 or 5), got "
                              f"{self.kernel_size}")
        at_least("downsample.groups", self.groups, 1)
