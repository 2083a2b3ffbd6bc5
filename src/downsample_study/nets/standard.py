"""The field's standard networks: He et al.'s CIFAR ResNets, ResNet-18 and VGG for small
images, and any torchvision or timm classifier through module surgery (``nets/surgery.py``)."""

from __future__ import annotations

import difflib

from torch import nn

from downsample_study.errors import ConfigError
from downsample_study.nets.configs import (
    CIFAR_RESNET_DEPTHS,
    VGG_STAGES,
    CifarResNetConfig,
    ModelConfig,
    PaddingMode,
    ResNet18Config,
    Shortcut,
    TimmConfig,
    TorchvisionConfig,
)
from downsample_study.nets.layers import ChannelPad, Residual, Subsample
from downsample_study.nets.models import Blocks, register_model
from downsample_study.nets.operators import create_downsample
from downsample_study.nets.points import DownsamplePoint, Rounding, Stands
from downsample_study.nets.surgery import adapt_stem, swap_downsampling


def residual(b: Blocks, name: str, out: int, stride: int, shortcut: Shortcut,
             padding_mode: PaddingMode) -> Blocks:
    """A basic block (He et al. 2016): 3×3 conv, BN, ReLU, 3×3 conv, BN, plus the shortcut,
    then ReLU. Where it halves the map, its first conv and its shortcut are each a
    downsampling point: option A subsamples (``Subsample``, at the operator's stride) and
    zero-pads the new channels, option B projects with a 1×1 conv and BN."""
    pad, bias = {"padding_mode": padding_mode.value}, not b.downsample.batch_norm
    body = Blocks(b.downsample, b.shape)
    if stride == 1:
        body.conv("conv1", out, 3, padding=1, bias=bias, **pad).batch_norm("bn1")
        body.relu("relu1")
    else:
        down = body.downsampled_conv("conv1", out, 3, padding=1, bias=bias,
                                     stands_for=Stands.conv, **pad)
        body.batch_norm("bn1").relu("relu1").down(down)
    body.conv("conv2", out, 3, padding=1, bias=bias, **pad).batch_norm("bn2")
    short = Blocks(b.downsample, b.shape)
    if stride > 1 and shortcut == Shortcut.A:
        op = create_downsample(b.downsample, DownsamplePoint(
            b.channels, size=b.shape[-2:], stands_for=Stands.conv, follows=True))
        if op.conv_stride > 1:
            short.add("subsample", Subsample(op.conv_stride))
        short.down(op.layer, dropout=False)
        extra = out - b.channels
        short.add("pad", ChannelPad(extra // 2, extra - extra // 2))
    elif stride > 1:
        down = short.downsampled_conv("conv", out, 1, bias=bias, stands_for=Stands.conv,
                                      follows=True)
        short.batch_norm("bn").down(down, dropout=False)
    elif out != b.channels:  # a wider stage at the same size: a projection alone
        short.conv("conv", out, 1, bias=bias).batch_norm("bn")
    b.add(name, Residual(body.build(), short.build()))
    return b.relu(f"{name}_relu")


def _resnet(b: Blocks, widths: tuple[int, ...], blocks: int, shortcut: Shortcut,
            padding_mode: PaddingMode, num_classes: int) -> nn.Sequential:
    """A 3×3 stem, stages of ``blocks`` basic blocks (each stage after the first halves the
    map at its first block), global average pooling, a linear classifier."""
    b.conv("conv1", widths[0], 3, padding=1, bias=not b.downsample.batch_norm,
           padding_mode=padding_mode.value).batch_norm("bn1").relu("relu1")
    for stage, width in enumerate(widths, start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            residual(b, f"layer{stage}_{block}", width, stride, shortcut, padding_mode)
    b.add("gap", nn.AdaptiveAvgPool2d(1))
    return b.classifier(num_classes=num_classes)


def cifar_resnet(cfg: CifarResNetConfig, b: Blocks, num_classes: int) -> nn.Sequential:
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
def resnet18(cfg: ResNet18Config, b: Blocks, num_classes: int) -> nn.Sequential:
    """ResNet-18 for small images (the APS/LPS/TIPS code's): a 3×3 stem of 64 channels and no
    max pool, stages of 2 basic blocks with 64, 128, 256, 512 channels, projection shortcuts
    (11,173,962 params on CIFAR-10 with downsample=stride2_fold)."""
    return _resnet(b, (64, 128, 256, 512), 2, Shortcut.B, cfg.padding_mode, num_classes)


def vgg(cfg: ModelConfig, b: Blocks, num_classes: int) -> nn.Sequential:
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


def _unknown(library: str, arch: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(arch, names, n=3)
    return ConfigError(f"model.arch: no {library} classification model {arch!r}"
                       f"{'; did you mean ' + ', '.join(close) + '?' if close else ''} "
                       f"({len(names)} to choose from)")


def _surgery(net: nn.Module, cfg: TorchvisionConfig, b: Blocks) -> nn.Module:
    """A network made for ImageNet, fitted to the data (``adapt_stem``), its points the
    operator's."""
    adapt_stem(net, b.input_shape, cfg.small_input)
    swap_downsampling(net, b.downsample, b.input_shape, min_channels=cfg.min_channels)
    return net


@register_model("torchvision")
def torchvision_model(cfg: TorchvisionConfig, b: Blocks, num_classes: int) -> nn.Module:
    """``torchvision.models.get_model(model.arch)`` without weights, for the dataset's channels
    and classes (``model.small_input``: a stem for 28 and 32 px), every downsampling point the
    operator's."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if cfg.arch not in names:
        raise _unknown("torchvision", cfg.arch, names)
    net = torchvision.models.get_model(cfg.arch, weights=None, num_classes=num_classes)
    return _surgery(net, cfg, b)


@register_model("timm")
def timm_model(cfg: TimmConfig, b: Blocks, num_classes: int) -> nn.Module:
    """``timm.create_model(model.arch)`` without weights, as ``model=torchvision`` builds."""
    try:
        import timm
    except ImportError:
        raise ConfigError("model=timm: timm is not installed (pip install timm, or "
                          "pip install 'downsample_study[timm]')") from None
    if not timm.is_model(cfg.arch):
        raise _unknown("timm", cfg.arch, timm.list_models())
    net = timm.create_model(cfg.arch, pretrained=False, num_classes=num_classes)
    return _surgery(net, cfg, b)
