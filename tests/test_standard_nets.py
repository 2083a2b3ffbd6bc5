"""The CIFAR ResNets (He et al. 2016, sec. 4.2), ResNet-18 and VGG-11/16 for small images, each
against a plain re-implementation written here: the same parameters, and with the reference's
own downsampling the same function, weight for weight. In a ResNet every other operator takes
both points of a stage's first block: its strided conv and its shortcut's subsampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.nets.layers import DownsampleLayer, Residual
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import available_downsamples, downsample_config
from downsample_study.nets.shapes import count_params


class PlainBlock(nn.Module):
    """A basic block as akamaster/pytorch_resnet_cifar10 (BSD-2) and kuangliu/pytorch-cifar
    (MIT) write it: option A pads ``x[:, :, ::2, ::2]`` with planes // 4 zero channels a side."""

    def __init__(self, in_planes: int, planes: int, stride: int, option: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.option, self.planes = option, planes
        self.shortcut = nn.Sequential()
        if (stride != 1 or in_planes != planes) and option == "B":
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride,
                                                    bias=False), nn.BatchNorm2d(planes))
        self.pad = stride != 1 or in_planes != planes

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.option == "A" and self.pad:
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4))
        else:
            short = self.shortcut(x)
        return F.relu(out + short)


class PlainResNet(nn.Module):
    def __init__(self, widths, blocks: int, option: str, in_channels: int = 3,
                 num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, in_planes = [], widths[0]
        for stage, planes in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(PlainBlock(in_planes, planes, stride, option))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.avg_pool2d(out, out.shape[3]).flatten(1)
        return self.linear(out)


def _plain(model: str, option: str) -> PlainResNet:
    if model == "resnet18":
        return PlainResNet((64, 128, 256, 512), 2, "B")
    return PlainResNet((16, 32, 64), (int(model.removeprefix("resnet")) - 2) // 6, option)


def _ours(model: str, operator: str = "stride2_fold", shape=(3, 32, 32), **options):
    config = model_config(model, **options)
    return build_model(config, downsample_config(operator, batch_norm=True), shape, 10)


@pytest.mark.parametrize(("model", "option", "params"), [
    ("resnet20", "A", 269_722), ("resnet32", "A", 464_154), ("resnet44", "A", 658_586),
    ("resnet56", "A", 853_018), ("resnet110", "A", 1_727_962), ("resnet20", "B", 272_474),
    ("resnet56", "B", 855_770), ("resnet18", "B", 11_173_962),
])
def test_parameter_counts_equal_the_plain_networks(model, option, params):
    options = {} if model == "resnet18" else {"shortcut": option}
    assert count_params(_ours(model, **options)) == count_params(_plain(model, option)) == params


@pytest.mark.parametrize(("model", "option"), [("resnet20", "A"), ("resnet20", "B"),
                                               ("resnet56", "A"), ("resnet18", "B")])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_with_the_strided_conv_the_network_is_the_plain_one_weight_for_weight(
    model, option, training
):
    torch.manual_seed(0)
    plain = _plain(model, option).double()
    ours = _ours(model, **({} if model == "resnet18" else {"shortcut": option})).double()
    theirs = list(plain.state_dict().values())
    assert [t.shape for t in ours.state_dict().values()] == [t.shape for t in theirs]
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs, strict=True)))
    plain.train(training)
    ours.train(training)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ours(x), plain(x))


def _points(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in net.named_modules() if isinstance(m, DownsampleLayer)]


@pytest.mark.parametrize("operator", sorted(set(available_downsamples()) - {"stride2_fold"}))
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_every_operator_takes_both_points_of_each_stage_that_halves_the_map(operator, shortcut):
    net = _ours("resnet20", operator, shortcut=shortcut)
    names = [name for name, _ in _points(net)]
    assert names == [f"layer{s}_0.{branch}.down1" for s in (2, 3)
                     for branch in ("body", "shortcut")]
    strided = [name for name, m in net.named_modules()
               if isinstance(m, nn.Conv2d) and m.stride != (1, 1)
               and not any(name.startswith(p) for p, _ in _points(net))]
    assert strided == []  # the operator downsamples; no conv keeps the stride of its own
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_the_paper_network_subsamples_its_shortcut_and_strides_its_conv():
    net = _ours("resnet20")
    block = net.layer2_0
    assert isinstance(block, Residual) and block.body.conv1.stride == (2, 2)
    assert [type(m).__name__ for m in block.shortcut] == ["Subsample", "ChannelPad"]
    assert _points(net) == []  # stride2_fold adds no layer


@pytest.mark.parametrize(("model", "shortcut"), [("resnet20", "A"), ("resnet20", "B"),
                                                 ("resnet18", None)])
@pytest.mark.parametrize("pool", ["max", "none"])
def test_an_aps_resnet_with_circular_padding_is_invariant_to_circular_shifts(model, shortcut,
                                                                              pool):
    """Its shortcut takes the body's phases, as the APS code does: each block's two branches
    shift alike, so no circular shift moves a logit (random weights, float64)."""
    from downsample_study.evaluations.shift import shift_images

    torch.manual_seed(0)
    options = {"padding_mode": "circular", **({"shortcut": shortcut} if shortcut else {})}
    config = downsample_config("aps", batch_norm=True, pool=pool)
    net = build_model(model_config(model, **options), config, (3, 32, 32), 10).double().eval()
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    logits = net(x)
    for dy, dx in [(0, 1), (1, 0), (3, -2), (-1, -1)]:
        moved = net(shift_images(x, torch.tensor([[dy, dx]] * 8), "circular"))
        torch.testing.assert_close(moved, logits, atol=1e-12, rtol=0)


def test_a_shortcut_that_chose_its_own_phase_would_break_the_invariance():
    """The same network with the phase hand-over undone: the branches can disagree."""
    from downsample_study.evaluations.shift import shift_images
    from downsample_study.nets.layers import PolyphaseSampling

    torch.manual_seed(0)
    net = _ours("resnet20", "aps", padding_mode="circular").double().eval()
    for block in net.modules():
        if isinstance(block, Residual):
            block.forward = lambda x, block=block: block.body(x) + block.shortcut(x)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    moved = net(shift_images(x, torch.tensor([[0, 1]] * 8), "circular"))
    assert (moved - net(x)).abs().max() > 1e-6
    assert any(isinstance(m, PolyphaseSampling) for m in net.layer2_0.shortcut.modules())


@pytest.mark.parametrize("model", ["resnet20", "resnet18"])
def test_a_circular_padding_mode_pads_every_3x3_conv(model):
    net = _ours(model, "aps", padding_mode="circular")
    modes = {m.padding_mode for m in net.modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}
    assert modes == {"circular"}


PLAIN_VGG = {"vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
             "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                       512, 512, 512, "M"]}


def _plain_vgg(name: str) -> nn.Sequential:
    """kuangliu/pytorch-cifar's VGG (MIT): conv (with bias), BN, ReLU; "M" a 2×2 max pool."""
    layers, channels = [], 3
    for entry in PLAIN_VGG[name]:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, entry, 3, padding=1), nn.BatchNorm2d(entry),
                       nn.ReLU()]
            channels = entry
    return nn.Sequential(*layers, nn.AvgPool2d(1, 1), nn.Flatten(), nn.Linear(512, 10))


@pytest.mark.parametrize(("name", "params"), [("vgg11", 9_231_114), ("vgg16", 14_728_266)])
def test_vgg_with_max_pooling_is_the_plain_network_weight_for_weight(name, params):
    torch.manual_seed(0)
    plain, ours = _plain_vgg(name).double(), _ours(name, "maxpool").double()
    assert count_params(ours) == count_params(plain) == params
    ours.load_state_dict(dict(zip(ours.state_dict(), plain.state_dict().values(), strict=True)))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ours(x), plain(x))
    assert len(_points(ours)) == 5


def test_vgg_keeps_a_feature_on_28x28_inputs_where_floor_would_collapse():
    net = _ours("vgg11", "maxpool", shape=(1, 28, 28))
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
