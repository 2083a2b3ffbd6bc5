"""Operator and model schemas and registries, torch-free: Hydra composes before torch loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from downsample_study.checks import above, at_least, probability
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
from downsample_study.registry import Registry

# --- operators ------------------------------------------------------------------------------


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


@dataclass
class StridedConvConfig(DownsampleConfig):
    kernel_size: int = 3  # padding = kernel_size // 2, so even maps halve exactly
    learned: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("downsample.kernel_size", self.kernel_size, 1)


@dataclass
class ConvThenPoolConfig(PoolConfig):
    conv_kernel_size: int = 3  # the extra C -> C convolution, padding conv_kernel_size // 2
    learned: ClassVar[bool] = True

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

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gate = as_choice(MixedPoolGate, self.gate, "downsample.gate")


@dataclass
class SpaceToDepthConfig(DownsampleConfig):
    kernel_size: int = 1  # of the conv from 4C back to C channels: 1 (default) or 3 (SPD-Conv)
    learned: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"downsample.kernel_size: must be odd and >= 1 (1 or 3), got "
                              f"{self.kernel_size}")


class APSPool(Choice):
    max = "max"  # a circular max pool (kernel 2, stride 1) first, in place of max pooling
    none = "none"  # the conv output itself is subsampled, in place of a strided conv


@dataclass
class APSConfig(DownsampleConfig):
    pool: APSPool = APSPool.max  # the pooling before the polyphase choice: max, avg or none
    shift_invariant: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pool = as_choice(APSPool, self.pool, "downsample.pool")

DOWNSAMPLES: Registry = Registry("downsample", DownsampleConfig,
                                 "downsample_study.nets.operators", {
    "maxpool": PoolConfig, "avgpool": PoolConfig, "stride2": StridedConvConfig,
    "stride2_fold": DownsampleConfig, "convpool": ConvThenPoolConfig,
    "blurpool": BlurPoolConfig, "lppool": LPPoolConfig, "mixedpool": MixedPoolConfig,
    "space_to_depth": SpaceToDepthConfig, "aps": APSConfig,
})

# --- models ---------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class Lenet5Config(ModelConfig):
    width: float = 1.0  # scales the conv channel counts (6, 16), e.g. to match a learned operator

    def __post_init__(self) -> None:
        above("model.width", self.width, 0)


class ConvActivation(Choice):
    none = "none"  # seed 002
    relu = "relu"


@dataclass
class Lenet5ClassicConfig(ModelConfig):
    conv_activation: ConvActivation = ConvActivation.none  # after each conv, before its pool

    def __post_init__(self) -> None:
        self.conv_activation = as_choice(ConvActivation, self.conv_activation,
                                         "model.conv_activation")


class PaddingMode(Choice):
    """Conv2d's padding modes."""

    zeros = "zeros"
    circular = "circular"
    reflect = "reflect"
    replicate = "replicate"


@dataclass
class LenetGapConfig(ModelConfig):
    padding_mode: PaddingMode = PaddingMode.zeros  # any but zeros also pads conv3

    def __post_init__(self) -> None:
        self.padding_mode = as_choice(PaddingMode, self.padding_mode, "model.padding_mode")


@dataclass
class ConvPoolConfig(ModelConfig):
    channels: list[int] = field(default_factory=lambda: [20, 50, 50])  # one conv-pool block each
    kernel_size: int = 5  # of every conv
    padding: int = 0  # of every conv

    def __post_init__(self) -> None:
        if not self.channels:
            raise ConfigError("model.channels: at least one conv-pool block is needed, got []")
        for i, width in enumerate(self.channels):
            at_least(f"model.channels[{i}]", width, 1)
        at_least("model.kernel_size", self.kernel_size, 1)
        at_least("model.padding", self.padding, 0)


@dataclass
class AllCnnConfig(ModelConfig):
    input_dropout: float = 0.0  # the paper: 0.2 on the input (and 0.5 via downsample.dropout)
    class_relu: bool = True  # the paper's ReLU on the 1x1 class maps before global averaging

    def __post_init__(self) -> None:
        probability("model.input_dropout", self.input_dropout)

class Shortcut(Choice):
    """How a residual block's shortcut meets a stage that halves the map and widens it."""

    A = "A"  # subsample (the operator's point) and pad the new channels with zeros: no params
    B = "B"  # a 1×1 projection conv and BatchNorm, the operator's point after them


@dataclass
class CifarResNetConfig(ModelConfig):
    """He et al. 2016 §4.2's CIFAR ResNets: 6n + 2 layers (resnet20: n = 3), stages of 16, 32,
    64 channels."""

    shortcut: Shortcut = Shortcut.A  # the paper's CIFAR nets use A
    padding_mode: PaddingMode = PaddingMode.zeros  # of every 3×3 conv (circular: APS's regime)

    def __post_init__(self) -> None:
        self.shortcut = as_choice(Shortcut, self.shortcut, "model.shortcut")
        self.padding_mode = as_choice(PaddingMode, self.padding_mode, "model.padding_mode")


@dataclass
class ResNet18Config(ModelConfig):
    """ResNet-18 for small images, as the APS, LPS and TIPS code bases build it: a 3×3 stem,
    no stem max pool, stages of 64 to 512 channels, projection shortcuts."""

    padding_mode: PaddingMode = PaddingMode.zeros  # of every 3×3 conv

    def __post_init__(self) -> None:
        self.padding_mode = as_choice(PaddingMode, self.padding_mode, "model.padding_mode")


@dataclass
class TorchvisionConfig(ModelConfig):
    """Any torchvision classification network, built without downloaded weights, its
    downsampling points given to the operator (``nets/surgery.py``)."""

    arch: str = "resnet18"  # a torchvision.models name: resnet50, vgg16_bn, mobilenet_v2, ...
    # for 28 and 32 px images: a strided stem conv runs at stride 1 and the pool after it goes
    small_input: bool = True
    min_channels: int = 16  # a strided conv with fewer inputs (an RGB stem) stays as it is

    def __post_init__(self) -> None:
        at_least("model.min_channels", self.min_channels, 1)


@dataclass
class TimmConfig(TorchvisionConfig):
    """Any timm network (``timm.list_models()``; ``pip install timm``), built the same way."""

    arch: str = "resnet18"  # a timm name: resnet18, resnet50d, seresnet50, regnety_008, ...


CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)
# VGG's convolutions per stage (Simonyan & Zisserman 2015, configurations A and D); a
# downsampling point ends each stage
VGG_STAGES = {"vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
              "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                        (512, 512, 512))}

# the standard networks import the seeds': one import registers every built-in
MODELS: Registry = Registry("model", ModelConfig, "downsample_study.nets.standard", {
    "lenet5": Lenet5Config, "lenet5_nopool": ModelConfig, "lenet_gap": LenetGapConfig,
    "lenet5_classic": Lenet5ClassicConfig, "convpool3": ConvPoolConfig,
    "allcnn_c": AllCnnConfig, "resnet18": ResNet18Config,
    **{f"resnet{depth}": CifarResNetConfig for depth in CIFAR_RESNET_DEPTHS},
    **{name: ModelConfig for name in VGG_STAGES}, "torchvision": TorchvisionConfig,
    "timm": TimmConfig,
})
