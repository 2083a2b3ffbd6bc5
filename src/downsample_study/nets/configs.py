"""The models' schemas and registry, torch-free: Hydra composes against them before torch
loads. (The operators' are in ``downsample_configs.py``.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from downsample_study.checks import above, at_least, probability
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
from downsample_study.registry import Registry


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
