"""Models × operators: shapes, parameter counts (the seeds' numbers), the collapse check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from downsample_study.data.datasets import DATASETS
from downsample_study.errors import ShapeError
from downsample_study.nets.layers import DownsampleLayer
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import available_downsamples, downsample_config
from downsample_study.nets.shapes import ModelSummary

FITS = {  # model -> datasets it fits with its default config (convpool3 collapses on 28x28)
    "lenet5": ["mnist", "cifar10"],
    "lenet5_nopool": ["mnist", "cifar10"],
    "lenet_gap": ["mnist", "cifar10"],
    "lenet5_classic": ["mnist", "cifar10"],
    "convpool3": ["cifar10"],
    "allcnn_c": ["cifar10"],
    "resnet20": ["mnist", "cifar10"],
    "resnet18": ["cifar10"],
    "vgg11": ["mnist", "cifar10"],
}
# the operator layers of each model (else 2): a ResNet has 2 per stage that halves the map
POINTS = {"convpool3": 3, "resnet20": 4, "resnet18": 6, "vgg11": 5}


def build(model: str, downsample: str, dataset: str = "mnist", model_kw=None, **ds_kw):
    info = DATASETS[dataset]
    net = build_model(
        model_config(model, **(model_kw or {})),
        downsample_config(downsample, **ds_kw),
        info.input_shape,
        info.num_classes,
    )
    return net, ModelSummary.of(net, info.input_shape)


@pytest.mark.parametrize(
    ("model", "downsample", "dataset", "kwargs", "params"),
    [
        ("lenet5", "maxpool", "mnist", {}, 61_706),  # seed 000 LeNet
        ("lenet5_nopool", "stride2_fold", "mnist", {}, 66_346),  # seed 000 LeNet_nopool
        ("lenet_gap", "maxpool", "mnist", {"batch_norm": True, "dropout": 0.4}, 52_174),
        ("lenet_gap", "stride2_fold", "mnist", {"batch_norm": True, "dropout": 0.4}, 52_174),
        ("lenet5_classic", "avgpool", "fashion_mnist", {}, 111_302),  # seed 002
        ("convpool3", "maxpool", "cifar10", {"batch_norm": True}, 89_770),  # seed 004
        # All-CNN (Springenberg et al. 2015): Model C, Strided-, ConvPool-, All-CNN-C
        ("allcnn_c", "maxpool", "cifar10", {}, 954_730),
        ("allcnn_c", "stride2_fold", "cifar10", {}, 954_730),
        ("allcnn_c", "convpool", "cifar10", {}, 1_369_738),
        ("allcnn_c", "stride2", "cifar10", {}, 1_369_738),
    ],
)
def test_parameter_counts_reproduce_the_seeds(model, downsample, dataset, kwargs, params):
    _, summary = build(model, downsample, dataset, **kwargs)
    assert summary.params_total == params


@pytest.mark.parametrize(("model", "dataset"), [(m, d) for m, ds in FITS.items() for d in ds])
@pytest.mark.parametrize("downsample", available_downsamples())
def test_every_model_takes_every_operator(model, downsample, dataset):
    net, summary = build(model, downsample, dataset)
    info = DATASETS[dataset]
    x = torch.randn(3, *info.input_shape, requires_grad=True)
    logits = net(x)
    assert logits.shape == (3, info.num_classes)
    logits.sum().backward()
    assert x.grad.abs().sum() > 0
    # the operator adds parameters exactly when its config says it learns
    learned = downsample_config(downsample).learned
    assert (summary.params_downsample > 0) == learned
    # every downsampling point is the operator's (stride2_fold's: a strided conv or
    # subsampling), listed with its shapes (at most half the side: a strided valid conv also
    # loses its kernel's border), and the rows holding one are marked
    points = POINTS.get(model, 2)
    layers = [m for m in net.modules() if isinstance(m, DownsampleLayer)]
    assert len(layers) == (0 if downsample == "stride2_fold" else points)
    assert len(summary.points) == points
    for point in summary.points:
        side, halved = point.input_shape[-1], point.output_shape[-1]
        assert 0 < halved <= -(-side // 2), point
    assert {row.name for row in summary.rows if row.downsample} == {
        point.name.split(".")[0] for point in summary.points}


@pytest.mark.parametrize(("width", "channels", "params"), [(1.0, (6, 16), 61_706),
                                                           (1.0625, (6, 17), 64_857),
                                                           (0.5, (3, 8), 35_820)])
def test_lenet5_width_scales_its_conv_channels(width, channels, params):
    net, summary = build("lenet5", "maxpool", model_kw={"width": width})
    assert (net.conv1.out_channels, net.conv2.out_channels) == channels
    assert summary.params_total == params


@pytest.mark.parametrize(("padding_mode", "conv3_padding", "gap_input"),
                         [("zeros", (0, 0), "120×3×3"), ("circular", (2, 2), "120×7×7")])
def test_lenet_gap_pads_conv3_unless_zero_padding(padding_mode, conv3_padding, gap_input):
    net, summary = build("lenet_gap", "maxpool", model_kw={"padding_mode": padding_mode},
                         batch_norm=True, dropout=0.4)
    assert net.conv3.padding == conv3_padding and net.conv3.padding_mode == padding_mode
    relu3 = next(r for r in summary.rows if r.name == "relu3")
    assert "×".join(map(str, relu3.output_shape)) == gap_input
    assert summary.params_total == 52_174


def test_stride2_fold_moves_the_stride_into_the_preceding_conv():
    net, _ = build("lenet_gap", "stride2_fold")
    assert net.conv1.stride == (2, 2) and net.conv2.stride == (2, 2)
    assert net.conv3.stride == (1, 1)


def test_batch_norm_and_dropout_are_switched_by_the_downsample_node():
    plain, _ = build("lenet5", "maxpool")
    regular, summary = build("lenet5", "maxpool", batch_norm=True, dropout=0.3)
    kinds = [type(m).__name__ for m in regular.children()]
    assert kinds.count("BatchNorm2d") == 2 and kinds.count("Dropout") == 2
    assert "BatchNorm2d" not in [type(m).__name__ for m in plain.children()]
    assert summary.params_total == 61_706 + 2 * (6 + 16)


@pytest.mark.parametrize(
    ("model", "dataset", "model_kw", "layer", "shape"),
    [
        ("convpool3", "cifar10", {"channels": [20, 50, 50, 50]}, "conv4", "50×1×1"),
        ("convpool3", "mnist", {}, "conv3", "50×4×4"),
    ],
)
def test_collapsing_feature_map_names_layer_and_shape(model, dataset, model_kw, layer, shape):
    with pytest.raises(ShapeError) as err:
        build(model, "maxpool", dataset, model_kw=model_kw)
    message = str(err.value)
    assert f"'{layer}'" in message and shape in message and "collapsed" in message


def test_summary_counts_flops_of_convs_and_linears():
    _, summary = build("lenet5", "maxpool")
    conv1 = 2 * 6 * 28 * 28 * 25
    conv2 = 2 * 16 * 10 * 10 * 6 * 25
    linear = 2 * (400 * 120 + 120 * 84 + 84 * 10)
    assert summary.flops_forward == conv1 + conv2 + linear
    text = summary.format()
    assert "61,706 total" in text and "down1 *" in text


def seed001_net(strided: bool) -> nn.Sequential:
    """Seed 001's network as its note writes it, in plain PyTorch (Dropout after block 1 only)."""
    s = 2 if strided else 1
    pool = (lambda: nn.Identity()) if strided else (lambda: nn.MaxPool2d(2, 2))
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, stride=s, padding=2), nn.ReLU(), pool(), nn.Dropout(0.4),
        nn.Conv2d(6, 16, 5, stride=s, padding=2), nn.BatchNorm2d(16), nn.ReLU(), pool(),
        nn.Conv2d(16, 120, 5), nn.BatchNorm2d(120), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(120, 10),
    )


def leaves(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]


@pytest.mark.parametrize("downsample", ["maxpool", "stride2_fold"])
def test_lenet_gap_is_seed_001s_network(downsample):
    net, summary = build("lenet_gap", downsample, batch_norm=True, dropout=0.4)
    reference = seed001_net(strided=downsample == "stride2_fold")
    assert [repr(m) for m in leaves(net)] == [repr(m) for m in leaves(reference)]
    reference.load_state_dict(dict(zip(reference.state_dict(), net.state_dict().values())))
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(net.eval()(x), reference.eval()(x))
    assert summary.params_total == 52_174
