"""The seeds' networks, each adapting to the dataset's channels and size.

At each downsampling point the model asks the operator (``create_downsample``) for the preceding
conv's stride and the layer after it. ``downsample.batch_norm`` and ``downsample.dropout`` add
BatchNorm and Dropout where each seed has them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from downsample_study.errors import ConfigError
from downsample_study.nets.configs import (
    CIFAR_RESNET_DEPTHS,
    MODELS,
    VGG_STAGES,
    AllCnnConfig,
    CifarResNetConfig,
    ConvActivation,
    ConvPoolConfig,
    DownsampleConfig,
    Lenet5ClassicConfig,
    Lenet5Config,
    LenetGapConfig,
    ModelConfig,
    PaddingMode,
    ResNet18Config,
    Shortcut,
    TorchvisionConfig,
)
from downsample_study.nets.layers import ChannelPad, Residual, Subsample
from downsample_study.nets.operators import create_downsample
from downsample_study.nets.points import DownsamplePoint, Rounding, Stands
from downsample_study.nets.shapes import LayerStack
from downsample_study.nets.surgery import adapt_stem, swap_downsampling

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
    return MODELS[cfg.name](cfg, _Blocks(downsample, input_shape), num_classes)


class _Blocks(LayerStack):
    """A ``LayerStack`` that knows the downsampling operator and the regularisation flags."""

    def __init__(self, downsample: DownsampleConfig, input_shape: tuple[int, ...]):
        super().__init__(input_shape)
        self.downsample = downsample
        self._points = 0

    @property
    def channels(self) -> int:
        return self.shape[0]

    def conv(self, name: str, out: int, kernel: int, *, stride: int = 1, **kwargs) -> _Blocks:
        return self.add(name, nn.Conv2d(self.channels, out, kernel, stride=stride, **kwargs))

    def batch_norm(self, name: str) -> _Blocks:
        if self.downsample.batch_norm:
            self.add(name, nn.BatchNorm2d(self.channels))
        return self

    def relu(self, name: str) -> _Blocks:
        return self.add(name, nn.ReLU())

    def downsampled_conv(
        self, name: str, out: int, kernel: int, *, rounding: Rounding = Rounding.floor,
        padding: int = 0, stands_for: Stands = Stands.pool, **kwargs
    ) -> nn.Module:
        """Add a conv that precedes a downsampling point; return the point's layer, which the
        caller places with ``down`` after its BatchNorm/activation."""
        size = tuple(n + 2 * padding - kernel + 1 for n in self.shape[-2:])  # at stride 1
        point = DownsamplePoint(out, rounding=rounding, size=size, stands_for=stands_for)
        op = create_downsample(self.downsample, point)
        self.conv(name, out, kernel, stride=op.conv_stride, padding=padding, **kwargs)
        return op.layer

    def down(self, layer: nn.Module, *, dropout: bool = True) -> _Blocks:
        """Place a point's layer, and Dropout after it (unless the seed has none there)."""
        self._points += 1
        self.add(f"down{self._points}", layer)
        if dropout and self.downsample.dropout > 0:
            self.add(f"drop{self._points}", nn.Dropout(self.downsample.dropout))
        return self

    def residual(self, name: str, out: int, stride: int, shortcut: Shortcut,
                 padding_mode: PaddingMode) -> _Blocks:
        """A basic block (He et al. 2016): 3×3 conv, BN, ReLU, 3×3 conv, BN, plus the shortcut,
        then ReLU. Where it halves the map, its first conv and its shortcut are each a
        downsampling point: option A subsamples (``Subsample``, at the operator's stride) and
        zero-pads the new channels, option B projects with a 1×1 conv and BN."""
        pad, bias = {"padding_mode": padding_mode.value}, not self.downsample.batch_norm
        body = _Blocks(self.downsample, self.shape)
        if stride == 1:
            body.conv("conv1", out, 3, padding=1, bias=bias, **pad).batch_norm("bn1")
            body.relu("relu1")
        else:
            down = body.downsampled_conv("conv1", out, 3, padding=1, bias=bias,
                                         stands_for=Stands.conv, **pad)
            body.batch_norm("bn1").relu("relu1").down(down)
        body.conv("conv2", out, 3, padding=1, bias=bias, **pad).batch_norm("bn2")
        short = _Blocks(self.downsample, self.shape)
        if stride > 1 and shortcut == Shortcut.A:
            op = create_downsample(self.downsample, DownsamplePoint(
                self.channels, size=self.shape[-2:], stands_for=Stands.conv))
            if op.conv_stride > 1:
                short.add("subsample", Subsample(op.conv_stride))
            short.down(op.layer, dropout=False)
            extra = out - self.channels
            short.add("pad", ChannelPad(extra // 2, extra - extra // 2))
        elif stride > 1:
            down = short.downsampled_conv("conv", out, 1, bias=bias, stands_for=Stands.conv)
            short.batch_norm("bn").down(down, dropout=False)
        elif out != self.channels:  # a wider stage at the same size: a projection alone
            short.conv("conv", out, 1, bias=bias).batch_norm("bn")
        self.add(name, Residual(body.build(), short.build()))
        return self.relu(f"{name}_relu")

    def classifier(self, *hidden: int, num_classes: int) -> nn.Sequential:
        self.add("flatten", nn.Flatten())
        for i, width in enumerate(hidden, start=1):
            self.add(f"fc{i}", nn.Linear(self.shape[0], width)).relu(f"fc{i}_relu")
        self.add(f"fc{len(hidden) + 1}", nn.Linear(self.shape[0], num_classes))
        return self.build()


@register_model("lenet5")
def lenet5(cfg: Lenet5Config, b: _Blocks, num_classes: int) -> nn.Sequential:
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
def lenet5_nopool(cfg: ModelConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
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
def lenet_gap(cfg: LenetGapConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
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
def lenet5_classic(cfg: Lenet5ClassicConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
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
def convpool3(cfg: ConvPoolConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
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
def allcnn_c(cfg: AllCnnConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
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


def _resnet(b: _Blocks, widths: tuple[int, ...], blocks: int, shortcut: Shortcut,
            padding_mode: PaddingMode, num_classes: int) -> nn.Sequential:
    """A 3×3 stem, stages of ``blocks`` basic blocks (each stage after the first halves the
    map at its first block), global average pooling, a linear classifier."""
    b.conv("conv1", widths[0], 3, padding=1, bias=not b.downsample.batch_norm,
           padding_mode=padding_mode.value).batch_norm("bn1").relu("relu1")
    for stage, width in enumerate(widths, start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            b.residual(f"layer{stage}_{block}", width, stride, shortcut, padding_mode)
    b.add("gap", nn.AdaptiveAvgPool2d(1))
    return b.classifier(num_classes=num_classes)


def cifar_resnet(cfg: CifarResNetConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
    """He et al. 2016 §4.2's CIFAR ResNet of ``model=resnet<depth>``: 3 stages of (depth − 2)
    / 6 basic blocks, 16, 32 and 64 channels (ResNet-20: 269,722 params on CIFAR-10 with option A,
    272,474 with B).
    ``downsample=stride2_fold`` is the paper's network; another operator takes each stage's
    strided conv and its shortcut's subsampling."""
    depth = int(cfg.name.removeprefix("resnet"))
    return _resnet(b, (16, 32, 64), (depth - 2) // 6, cfg.shortcut, cfg.padding_mode,
                   num_classes)


for _depth in CIFAR_RESNET_DEPTHS:
    register_model(f"resnet{_depth}")(cifar_resnet)


@register_model("resnet18")
def resnet18(cfg: ResNet18Config, b: _Blocks, num_classes: int) -> nn.Sequential:
    """ResNet-18 for small images (the APS/LPS/TIPS code's): a 3×3 stem of 64 channels and no
    max pool, stages of 2 basic blocks with 64, 128, 256, 512 channels, projection shortcuts
    (11,173,962 params on CIFAR-10 with downsample=stride2_fold)."""
    return _resnet(b, (64, 128, 256, 512), 2, Shortcut.B, cfg.padding_mode, num_classes)


def vgg(cfg: ModelConfig, b: _Blocks, num_classes: int) -> nn.Sequential:
    """VGG-11 or VGG-16 for small images (kuangliu/pytorch-cifar's): 3×3 convs with BN and
    ReLU, a downsampling point after each of 5 stages, one linear classifier on 512 features
    (9,231,114 and 14,728,266 params on CIFAR-10 with max pooling). Points truncate as
    Paddle's do, so 28×28 inputs go 14, 7, 3, 1, 1."""
    for stage, widths in enumerate(VGG_STAGES[cfg.name], start=1):
        for i, width in enumerate(widths, start=1):
            name = f"conv{stage}_{i}"  # with a bias before BN, as the reference code
            if i < len(widths):
                b.conv(name, width, 3, padding=1)
                b.batch_norm(f"bn{stage}_{i}").relu(f"relu{stage}_{i}")
            else:
                down = b.downsampled_conv(name, width, 3, padding=1, rounding=Rounding.truncate)
                b.batch_norm(f"bn{stage}_{i}").relu(f"relu{stage}_{i}").down(down)
    b.add("gap", nn.AdaptiveAvgPool2d(1))  # 1×1 already: the features, whatever the input
    return b.classifier(num_classes=num_classes)


for _name in VGG_STAGES:
    register_model(_name)(vgg)


@register_model("torchvision")
def torchvision_model(cfg: TorchvisionConfig, b: _Blocks, num_classes: int) -> nn.Module:
    """``torchvision.models.get_model(model.arch)`` without weights, for the dataset's channels
    and classes (``model.small_input``: a stem for 28 and 32 px), every downsampling point the
    operator's."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if cfg.arch not in names:
        close = difflib.get_close_matches(cfg.arch, names, n=3)
        raise ConfigError(f"model.arch: no torchvision classification model {cfg.arch!r}"
                          f"{'; did you mean ' + ', '.join(close) + '?' if close else ''} "
                          f"(torchvision.models.list_models() lists {len(names)})")
    net = torchvision.models.get_model(cfg.arch, weights=None, num_classes=num_classes)
    adapt_stem(net, b.input_shape, cfg.small_input)
    swap_downsampling(net, b.downsample, b.input_shape, min_channels=cfg.min_channels)
    return net
