"""The seeds' networks, each adapting to the dataset's channels and size.

At each downsampling point the model asks the operator (``create_downsample``) for the preceding
conv's stride and the layer after it. ``downsample.batch_norm`` and ``downsample.dropout`` add
BatchNorm and Dropout where each seed has them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from downsample_study.nets.configs import (
    MODELS,
    AllCnnConfig,
    ConvActivation,
    ConvPoolConfig,
    Lenet5ClassicConfig,
    Lenet5Config,
    LenetGapConfig,
    ModelConfig,
    PaddingMode,
)
from downsample_study.nets.downsample_base import DownsampleConfig
from downsample_study.nets.operators import create_downsample
from downsample_study.nets.points import DownsamplePoint, Rounding, Stands
from downsample_study.nets.shapes import LayerStack

Builder = Callable[..., nn.Sequential]


def register_model(name: str, schema: type | None = None) -> Callable[[Builder], Builder]:
    """Register a builder as model ``name``; ``schema``, its config dataclass (default: the
    built-in's, else ``ModelConfig``)."""
    return MODELS.register(name, schema)


def model_config(name: str, **options) -> ModelConfig:
    """The config of model ``name`` with its defaults, e.g. for building a model by hand."""
    return MODELS.schema(name)(name=name, **options)


def build_model(
    cfg: ModelConfig,
    downsample: DownsampleConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
) -> nn.Sequential:
    """Build ``cfg.name`` for inputs of ``input_shape`` (C, H, W); raises ``ShapeError``."""
    return MODELS[cfg.name](cfg, Blocks(downsample, input_shape), num_classes)


class Blocks(LayerStack):
    """A ``LayerStack`` that knows the downsampling operator and the regularisation flags."""

    def __init__(self, downsample: DownsampleConfig, input_shape: tuple[int, ...]):
        super().__init__(input_shape)
        self.downsample = downsample
        self._points = 0

    @property
    def channels(self) -> int:
        return self.shape[0]

    def conv(self, name: str, out: int, kernel: int, *, stride: int = 1, **kwargs) -> Blocks:
        return self.add(name, nn.Conv2d(self.channels, out, kernel, stride=stride, **kwargs))

    def batch_norm(self, name: str) -> Blocks:
        if self.downsample.batch_norm:
            self.add(name, nn.BatchNorm2d(self.channels))
        return self

    def relu(self, name: str) -> Blocks:
        return self.add(name, nn.ReLU())

    def downsampled_conv(
        self, name: str, out: int, kernel: int, *, rounding: Rounding = Rounding.floor,
        padding: int = 0, stands_for: Stands = Stands.pool, follows: bool = False, **kwargs
    ) -> nn.Module:
        """Add a conv that precedes a downsampling point; return the point's layer, which the
        caller places with ``down`` after its BatchNorm/activation."""
        size = tuple(n + 2 * padding - kernel + 1 for n in self.shape[-2:])  # at stride 1
        point = DownsamplePoint(out, rounding=rounding, size=size, stands_for=stands_for,
                                follows=follows)
        op = create_downsample(self.downsample, point)
        self.conv(name, out, kernel, stride=op.conv_stride, padding=padding, **kwargs)
        return op.layer

    def down(self, layer: nn.Module, *, dropout: bool = True) -> Blocks:
        """Place a point's layer, and Dropout after it (unless the seed has none there)."""
        self._points += 1
        self.add(f"down{self._points}", layer)
        if dropout and self.downsample.dropout > 0:
            self.add(f"drop{self._points}", nn.Dropout(self.downsample.dropout))
        return self

    def classifier(self, *hidden: int, num_classes: int) -> nn.Sequential:
        self.add("flatten", nn.Flatten())
        for i, width in enumerate(hidden, start=1):
            self.add(f"fc{i}", nn.Linear(self.shape[0], width)).relu(f"fc{i}_relu")
        self.add(f"fc{len(hidden) + 1}", nn.Linear(self.shape[0], num_classes))
        return self.build()


@register_model("lenet5")
def lenet5(cfg: Lenet5Config, b: Blocks, num_classes: int) -> nn.Sequential:
    """Seed 000's LeNet (61,706 params on MNIST), its activation quirk kept.

    conv 6 k5 p2, ReLU, down, ReLU, conv 16 k5, down, fc 120, fc 84, fc 10: the post applies
    ReLU after the first pool and none after conv2. ``model.width`` scales the 6 and 16.
    """
    c1, c2 = (max(1, round(c * cfg.width)) for c in (6, 16))
    down = b.downsampled_conv("conv1", c1, 5, padding=2)
    b.batch_norm("bn1").relu("relu1").down(down).relu("relu1b")
    down = b.downsampled_conv("conv2", c2, 5)
    b.batch_norm("bn2").down(down)
    return b.classifier(120, 84, num_classes=num_classes)


@register_model("lenet5_nopool")
def lenet5_nopool(cfg: ModelConfig, b: Blocks, num_classes: int) -> nn.Sequential:
    """Seed 000's LeNet_nopool: with ``downsample=stride2_fold`` it is the post's net exactly.

    conv 6 k5 p2, conv 16 k5 [down], conv 16 k3 p1, conv 16 k3 [down], fc 120, 84, 10
    (66,346 params on MNIST with every operator that adds no parameters).
    """
    b.conv("conv1", 6, 5, padding=2).batch_norm("bn1").relu("relu1")
    down = b.downsampled_conv("conv2", 16, 5)
    b.batch_norm("bn2").relu("relu2").down(down)
    b.conv("conv3", 16, 3, padding=1).batch_norm("bn3").relu("relu3")
    down = b.downsampled_conv("conv4", 16, 3)
    b.batch_norm("bn4").down(down)
    return b.classifier(120, 84, num_classes=num_classes)


@register_model("lenet_gap")
def lenet_gap(cfg: LenetGapConfig, b: Blocks, num_classes: int) -> nn.Sequential:
    """Seed 001: conv 6 k5 p2 [down], conv 16 k5 p2 [down], conv 120 k5, global avg pool, fc.

    BatchNorm after conv2 and conv3, Dropout after the first point only, as in the post (52,174
    params on MNIST with batch_norm on, dropout 0.4). A padding mode other than zeros also pads
    conv3, so with ``circular`` every conv, and with ``downsample=aps`` the net up to the global
    average pool, is equivariant to circular shifts.
    """
    pad = {"padding_mode": cfg.padding_mode.value}
    down = b.downsampled_conv("conv1", 6, 5, padding=2, **pad)
    b.relu("relu1").down(down)
    down = b.downsampled_conv("conv2", 16, 5, padding=2, **pad)
    b.batch_norm("bn2").relu("relu2").down(down, dropout=False)
    conv3_padding = 0 if cfg.padding_mode == PaddingMode.zeros else 2  # seed 001's conv3 is valid
    b.conv("conv3", 120, 5, padding=conv3_padding, **pad).batch_norm("bn3").relu("relu3")
    b.add("gap", nn.AdaptiveAvgPool2d(1))
    return b.classifier(num_classes=num_classes)


@register_model("lenet5_classic")
def lenet5_classic(cfg: Lenet5ClassicConfig, b: Blocks, num_classes: int) -> nn.Sequential:
    """Seed 002's LeNet-5: conv 6 k5 [down], conv 16 k5 [down], fc 320, fc 80, fc 10.

    111,302 params on FashionMNIST; no activation in the conv blocks unless
    ``model.conv_activation=relu``.
    """
    for i, out in enumerate((6, 16), start=1):
        down = b.downsampled_conv(f"conv{i}", out, 5)
        b.batch_norm(f"bn{i}")
        if cfg.conv_activation == ConvActivation.relu:
            b.relu(f"relu{i}")
        b.down(down)
    return b.classifier(320, 80, num_classes=num_classes)


@register_model("convpool3")
def convpool3(cfg: ConvPoolConfig, b: Blocks, num_classes: int) -> nn.Sequential:
    """Seed 004: conv-ReLU-[down] blocks (20, 50, 50 filters, k5), BatchNorm after all but the last,
    a linear classifier. Output sizes truncate as Paddle's do: a 1x1 map pools to 1x1 (89,770 params
    on CIFAR-10)."""
    last = len(cfg.channels)
    for i, out in enumerate(cfg.channels, start=1):
        down = b.downsampled_conv(
            f"conv{i}", out, cfg.kernel_size, padding=cfg.padding, rounding=Rounding.truncate
        )
        b.relu(f"relu{i}").down(down)
        if i < last:
            b.batch_norm(f"bn{i}")
    return b.classifier(num_classes=num_classes)


@register_model("allcnn_c")
def allcnn_c(cfg: AllCnnConfig, b: Blocks, num_classes: int) -> nn.Sequential:
    """All-CNN's Model C for CIFAR-10 (Springenberg et al. 2015), its two pools the operator.

    3x3 convs (padding 1) 96, 96 [down], 192, 192 [down], 192 (valid), 1x1 192, 1x1 classes,
    global average pooling; ReLU after every conv and each downsampling layer (All-CNN-C's
    stride-2 convs have one; after a pool it is a no-op). maxpool = Model C, stride2_fold =
    Strided-CNN-C, convpool = ConvPool-CNN-C, stride2 = All-CNN-C. Points round up like Caffe,
    so the paper's 3x3 pool also halves 32 -> 16 -> 8. BatchNorm follows every conv but the last.
    """
    if cfg.input_dropout > 0:
        b.add("input_drop", nn.Dropout(cfg.input_dropout))
    for stage, out in enumerate((96, 192), start=1):
        i = 2 * stage - 1
        b.conv(f"conv{i}", out, 3, padding=1).batch_norm(f"bn{i}").relu(f"relu{i}")
        down = b.downsampled_conv(f"conv{i + 1}", out, 3, padding=1, rounding=Rounding.ceil)
        b.batch_norm(f"bn{i + 1}").relu(f"relu{i + 1}").down(down)
        if not isinstance(down, nn.Identity):
            b.relu(f"relu_down{stage}")
    b.conv("conv5", 192, 3).batch_norm("bn5").relu("relu5")
    b.conv("conv6", 192, 1).batch_norm("bn6").relu("relu6")
    b.conv("conv7", num_classes, 1)
    if cfg.class_relu:
        b.relu("relu7")
    return b.add("gap", nn.AdaptiveAvgPool2d(1)).add("flatten", nn.Flatten()).build()

