"""The downsampling operators one by one: shapes, parameters, gradients, their properties."""

from __future__ import annotations

import math

import pytest
import torch
from support import launch, results_under
from support.evaluations import evaluation_data
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.errors import ConfigError, ShapeError
from downsample_study.evaluations.configs import ShiftConfig
from downsample_study.evaluations.shift import shift_robustness
from downsample_study.nets.downsample_base import Family
from downsample_study.nets.layers import BlurPool
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import (
    DownsamplePoint,
    available_downsamples,
    create_downsample,
    downsample_config,
)
from downsample_study.nets.points import Rounding
from downsample_study.nets.shapes import count_params

C = 8  # channels at the downsampling point


# (operator, options, parameters added at a point with c channels, rounds odd sizes up at a
# floor-mode point)
VARIANTS = [
    ("maxpool", {}, lambda c: 0, False),
    ("avgpool", {}, lambda c: 0, False),
    ("stride2", {}, lambda c: 9 * c * c + c, True),
    ("stride2_fold", {}, lambda c: 0, True),
    ("convpool", {}, lambda c: 9 * c * c + c, False),
    ("convpool", {"conv_kernel_size": 5}, lambda c: 25 * c * c + c, False),
    ("blurpool", {}, lambda c: 0, False),
    ("blurpool", {"variant": "avg", "filter_size": 5}, lambda c: 0, True),
    ("blurpool", {"variant": "conv"}, lambda c: 9 * c * c + c, True),
    ("lppool", {}, lambda c: 0, False),
    ("lppool", {"p": 3.0}, lambda c: 0, False),
    ("mixedpool", {}, lambda c: 1, False),
    ("mixedpool", {"gate": "channel"}, lambda c: c, False),
    ("space_to_depth", {}, lambda c: 4 * c * c + c, False),
    ("space_to_depth", {"kernel_size": 3}, lambda c: 36 * c * c + c, False),
    ("aps", {}, lambda c: 0, True),
    ("aps", {"pool": "none"}, lambda c: 0, True),
    ("lps", {}, lambda c: 18 * c * c + 2 * c, True),
    ("lps", {"pool": "none", "hidden_channels": 4}, lambda c: 36 * c + 4 + 148, True),
    ("tips", {}, lambda c: 10 * c, True),
    ("tips", {"kernel_size": 5, "shift": "standard"}, lambda c: 26 * c, True),
    ("softpool", {}, lambda c: 0, False),
    ("lip", {}, lambda c: 9 * c * c + 2 * c, True),  # 3x3 stride 2 padding 1: rounds up
    ("stochasticpool", {}, lambda c: 0, False),
    ("fractionalpool", {}, lambda c: 0, False),
    ("fractionalpool", {"kernel_size": 3}, lambda c: 0, False),
    ("flcpool", {}, lambda c: 0, False),
    ("asap", {}, lambda c: 0, False),
    ("spectralpool", {}, lambda c: 0, False),
    ("dwtpool", {}, lambda c: 0, False),
    ("dwtpool", {"wavelet": "haar"}, lambda c: 0, False),
    ("dwtpool", {"wavelet": "db4"}, lambda c: 0, False),
    # a conv from c channels to g·9 filter logits (3×3, no bias), BatchNorm; g = gcd(8, c)
    ("pasa", {}, lambda c: math.gcd(8, c) * 9 * (9 * c + 2), False),
    ("pasa", {"kernel_size": 5, "groups": 2}, lambda c: math.gcd(2, c) * 25 * (25 * c + 2),
     False),
    ("pasa", {"softmax": "joint"}, lambda c: math.gcd(8, c) * 9 * (9 * c + 2), False),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts, *_ in VARIANTS]
NEW = ["convpool", "blurpool", "lppool", "mixedpool", "space_to_depth", "aps"]


def config(name: str, **options):
    return downsample_config(name, **options)


def block(name: str, options: dict, *, rounding=Rounding.floor, size=None) -> nn.Sequential:
    """The conv before a downsampling point (at the operator's stride), then its layer."""
    op = create_downsample(config(name, **options), DownsamplePoint(C, rounding, size))
    return nn.Sequential(nn.Conv2d(C, C, 3, stride=op.conv_stride, padding=1), op.layer)


def test_every_operator_is_covered_here():
    assert {name for name, *_ in VARIANTS} == set(available_downsamples())


@pytest.mark.parametrize("name", available_downsamples())
def test_every_operator_says_its_family(name):
    assert type(config(name)).family != Family.other


@pytest.mark.parametrize(
    ("name", "options", "rounds_up", "rounding", "size"),
    [  # a 1x1 map at a floor-mode point of a 2x2 window is the collapse check's case
        (name, options, rounds_up, rounding, size)
        for name, options, _, rounds_up in VARIANTS
        for rounding in Rounding
        for size in [(8, 8), (9, 9), (7, 10), (1, 1)]
        if size != (1, 1) or rounding != Rounding.floor or rounds_up
    ],
    ids=str,
)
def test_output_shape_on_odd_and_even_inputs(name, options, rounds_up, rounding, size):
    out = block(name, options, rounding=rounding, size=size)(torch.randn(2, C, *size))
    # Paddle truncates (n - 2) / 2 toward zero: floor, but a 1x1 map stays 1x1
    up = rounding == Rounding.ceil or rounds_up or (rounding == Rounding.truncate and 1 in size)
    halve = math.ceil if up else math.floor
    assert out.shape == (2, C, *(halve(n / 2) for n in size))


def paddle_pool_size(n: int, kernel: int, stride: int) -> int:
    """Paddle's pooled size: (n - k) / s + 1 in C++ integer division (toward zero)."""
    return int((n - kernel) / stride) + 1


@pytest.mark.parametrize("name", ["maxpool", "avgpool", "lppool", "mixedpool", "convpool"])
@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_a_truncating_point_sizes_its_output_as_paddle_does(name, kernel):
    for n in range(1, 17):
        if paddle_pool_size(n, kernel, 2) < 1:
            continue
        point = DownsamplePoint(C, Rounding.truncate, (n, n))
        layer = create_downsample(config(name, kernel_size=kernel), point).layer
        assert layer(torch.rand(1, C, n, n)).shape[-1] == paddle_pool_size(n, kernel, 2), n


def test_convpool3_with_a_larger_pool_kernel_pools_as_paddle_does():
    # 39x39: conv k5 -> 35, pool k4/2 -> 16 (rounding up: 17), conv -> 12, pool -> 5
    net = build_model(model_config("convpool3", channels=[20, 50]),
                      config("maxpool", kernel_size=4), (3, 39, 39), 10)
    x = torch.randn(1, 3, 39, 39)
    sizes = []
    for name, layer in net.named_children():
        x = layer(x)
        if name.startswith("down"):
            sizes.append(x.shape[-1])
    assert sizes == [paddle_pool_size(35, 4, 2), paddle_pool_size(12, 4, 2)] == [16, 5]


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("size", [8, 9, 14, 15])
def test_maxblurpool_is_zhangs_on_even_maps_and_pads_odd_ones_only_to_round_up(rounding, size):
    point = DownsamplePoint(C, rounding, (size, size))
    layer = create_downsample(config("blurpool"), point).layer
    x = torch.randn(2, C, size, size)
    # Zhang 2019 (antialiased-cnns): MaxPool2d(kernel_size=2, stride=1), then BlurPool
    zhang = nn.Sequential(nn.MaxPool2d(2, stride=1), BlurPool(C, 3))
    up = size % 2 and rounding == Rounding.ceil
    expected = zhang(nn.functional.pad(x, (0, 1, 0, 1), mode="replicate") if up else x)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    assert layer(x).shape[-1] == (math.ceil if up else math.floor)(size / 2)


OWN_CONVS = [("stride2", {}), ("convpool", {}), ("blurpool", {"variant": "conv"}),
             ("space_to_depth", {}), ("space_to_depth", {"kernel_size": 3})]


@pytest.mark.parametrize(("name", "options"), OWN_CONVS, ids=lambda v: str(v))
def test_batch_norm_follows_the_convolutions_an_operator_adds(name, options):
    plain = create_downsample(config(name, **options), DownsamplePoint(C)).layer
    normed = create_downsample(config(name, batch_norm=True, **options), DownsamplePoint(C)).layer
    kinds = [type(m).__name__ for m in normed]
    assert "BatchNorm2d" not in [type(m).__name__ for m in plain]
    assert kinds[kinds.index("Conv2d") + 1] == "BatchNorm2d"
    assert count_params(normed) == count_params(plain) + 2 * C
    x = torch.randn(4, C, 8, 8).relu()
    assert normed(x).shape == plain(x).shape


@pytest.mark.parametrize(("name", "options", "added", "rounds_up"), VARIANTS, ids=IDS)
def test_parameters_added_and_gradients_flow(name, options, added, rounds_up):
    op = create_downsample(config(name, **options), DownsamplePoint(C))
    assert count_params(op.layer) == added(C)
    assert config(name, **options).learned == (added(C) > 0)
    x = torch.randn(2, C, 10, 10).relu().requires_grad_()  # operators follow a ReLU
    out = op.layer(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    # every parameter is in the graph; at its init one may get no gradient yet (LIP's conv
    # starts at zero, so its norm's scale and shift act on a constant)
    grads = [param.grad for param in op.layer.parameters()]
    assert all(grad is not None for grad in grads)
    assert not grads or any(grad.abs().sum() > 0 for grad in grads)


@pytest.mark.parametrize("name", available_downsamples())
def test_collapse_check_still_names_the_layer(name):
    # lenet5 on 8x8: conv1 keeps 8x8, the operator halves it, conv2's 5x5 kernel cannot fit
    with pytest.raises(ShapeError) as err:
        build_model(model_config("lenet5"), config(name), (1, 8, 8), 10)
    assert "layer 'conv2'" in str(err.value) and "cannot take its input" in str(err.value)


@pytest.mark.parametrize(
    ("name", "options", "key", "allowed"),
    [
        ("blurpool", {"variant": "min"}, "downsample.variant", "max, avg, conv"),
        ("blurpool", {"filter_size": 0}, "downsample.filter_size", ">= 1"),
        ("mixedpool", {"gate": "pixel"}, "downsample.gate", "layer, channel"),
        ("aps", {"pool": "avg"}, "downsample.pool", "max, none"),
        ("space_to_depth", {"kernel_size": 2}, "downsample.kernel_size", "odd"),
        ("lppool", {"p": 0.0}, "downsample.p", "> 0"),
        ("lps", {"pool": "avg"}, "downsample.pool", "max, none"),
        ("lps", {"hidden_channels": -1}, "downsample.hidden_channels", ">= 0"),
        ("lps", {"gumbel_tau": 0.0}, "downsample.gumbel_tau", "> 0"),
        ("lps", {"logits_padding": "wrap"},
         "downsample.logits_padding", "circular, zeros, reflect, replicate"),
        ("tips", {"kernel_size": 2}, "downsample.kernel_size", "odd and >= 1"),
        ("tips", {"alpha": 1.0}, "downsample.alpha", "[0, 1)"),
        ("tips", {"fm_weight": -1.0}, "downsample.fm_weight", ">= 0"),
        ("tips", {"max_shift": -1}, "downsample.max_shift", ">= 0"),
        ("tips", {"shift": "reflect"}, "downsample.shift", "circular, standard"),
        ("dwtpool", {"wavelet": "haar2"}, "downsample.wavelet", "haar, db2"),
        ("dwtpool", {"wavelet": "morl"}, "downsample.wavelet", "ch3.3"),
        ("dwtpool", {"wavelet": "ch9.9"}, "downsample.wavelet", "bior2.2"),
        ("pasa", {"kernel_size": 4}, "downsample.kernel_size", "odd and >= 3"),
        ("pasa", {"kernel_size": 1}, "downsample.kernel_size", "odd and >= 3"),
        ("pasa", {"groups": 0}, "downsample.groups", ">= 1"),
        ("pasa", {"softmax": "pixel"}, "downsample.softmax", "joint, group"),
        ("softpool", {"kernel_size": 0}, "downsample.kernel_size", ">= 1"),
        ("softpool", {"stride": 0}, "downsample.stride", ">= 1"),
        ("stochasticpool", {"kernel_size": 0}, "downsample.kernel_size", ">= 1"),
        ("stochasticpool", {"stride": 0}, "downsample.stride", ">= 1"),
        ("fractionalpool", {"kernel_size": 0}, "downsample.kernel_size", ">= 1"),
    ],
)
def test_bad_options_name_the_key_and_what_is_allowed(name, options, key, allowed):
    with pytest.raises(ConfigError) as err:
        create_downsample(config(name, **options), DownsamplePoint(C))
    message = str(err.value)  # one line that starts with the key
    assert message.startswith(f"{key}: ") and allowed in message and "\n" not in message
    assert str(next(iter(options.values()))) in message  # and what was given


@pytest.mark.parametrize(("make", "kind", "a_known_one"),
                         [(downsample_config, "downsample", "maxpool"),
                          (model_config, "model", "lenet5")])
def test_an_unknown_name_built_by_hand_names_what_is_allowed(make, kind, a_known_one):
    with pytest.raises(ConfigError) as err:
        make("maxpol")
    assert f"unknown {kind} 'maxpol'" in str(err.value) and a_known_one in str(err.value)


# --- properties --------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"pool": "none"}], ids=["pool=max", "pool=none"])
@pytest.mark.parametrize("shift", [(1, 0), (0, 1), (1, 1), (3, 6), (7, 5)])
def test_aps_output_of_a_circular_shift_is_a_circular_shift(options, shift):
    layer = create_downsample(config("aps", **options), DownsamplePoint(3)).layer
    x = torch.randn(4, 3, 12, 12)
    out, shifted = layer(x), layer(torch.roll(x, shift, dims=(2, 3)))
    for a, b in zip(out, shifted):  # each sample: some roll of its own output
        assert any(
            torch.equal(torch.roll(a, (i, j), dims=(1, 2)), b) for i in range(6) for j in range(6)
        )


def textures(n: int, size: int = 28) -> torch.Tensor:
    """Noisy sine gratings of random orientation, period and phase (uint8, N×1×size×size)."""
    g = torch.Generator().manual_seed(0)
    theta, phase = torch.rand(n, generator=g) * math.pi, torch.rand(n, generator=g) * 2 * math.pi
    period = 3 + 6 * torch.rand(n, generator=g)
    y, x = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    along = x * theta.cos()[:, None, None] + y * theta.sin()[:, None, None]
    wave = torch.sin(2 * math.pi * along / period[:, None, None] + phase[:, None, None])
    image = 0.5 + 0.4 * wave + 0.2 * torch.rand(n, size, size, generator=g)
    return (image.clamp(0, 1) * 255).to(torch.uint8)[:, None]


@pytest.mark.parametrize(("name", "invariant"), [("aps", True), ("maxpool", False)])
def test_lenet_gap_with_circular_padding_and_aps_is_shift_consistent(name, invariant):
    torch.manual_seed(1)
    net = build_model(
        model_config("lenet_gap", padding_mode="circular"),
        config(name, batch_norm=True, dropout=0.4),
        (1, 28, 28),
        10,
    ).eval()
    images = textures(100)
    split = Split(images, torch.arange(100) % 10)
    shifts = ShiftConfig(max=27, modes=["circular"], samples=4)
    measured = shift_robustness(net.eval(), evaluation_data(split, batch_size=100),
                                shifts).details
    x = (images.float() / 255 - 0.5) / 0.3
    logits = net(x)
    assert len(logits.argmax(1).unique()) > 1  # the predictions are not trivially constant
    change = (net(torch.roll(x, (5, 11), dims=(2, 3))) - logits).abs().max()
    if invariant:
        assert measured["circular"]["consistency"] == 1.0
        assert change < 1e-5
    else:  # the measure has teeth: max pooling is not shift invariant
        assert measured["circular"]["consistency"] < 1.0
        assert change > 1e-3


@pytest.mark.parametrize(
    ("variant", "size"),
    # 1 and 2 are too small to reflect-pad: replicated; the stride-1 max pool needs 2 pixels
    [("avg", 1), ("avg", 2), ("avg", 9), ("max", 2), ("max", 9), ("max", 16)],
)
@pytest.mark.parametrize("filter_size", [1, 2, 3, 4, 5])
def test_blurpool_keeps_a_constant_image_constant(variant, size, filter_size):
    layer = create_downsample(
        config("blurpool", variant=variant, filter_size=filter_size), DownsamplePoint(3)
    ).layer
    out = layer(torch.full((2, 3, size, size), 0.7))
    torch.testing.assert_close(out, torch.full_like(out, 0.7))


def test_blurpool_filter_is_a_fixed_normalised_binomial():
    blur = BlurPool(channels=2, filter_size=5)
    row = torch.tensor([1.0, 4, 6, 4, 1])
    torch.testing.assert_close(blur.kernel[1, 0], torch.outer(row, row) / 256)
    assert count_params(blur) == 0 and "kernel" in dict(blur.named_buffers())


def test_lppool_p1_is_sum_pooling_and_large_p_approaches_max_pooling():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sum_pool = create_downsample(config("lppool", p=1.0), DownsamplePoint(3)).layer
    torch.testing.assert_close(sum_pool(x), nn.functional.avg_pool2d(x, 2) * 4)
    positive = x.abs().clamp(max=2.0) + 0.5  # in float32, x ** 64 overflows past x = 3.97
    p = 64.0
    lp = create_downsample(config("lppool", p=p), DownsamplePoint(3)).layer(positive)
    max_pool = nn.functional.max_pool2d(positive, 2)
    # max <= (sum of x^p)^(1/p) <= 4^(1/p) max: within 2.2 % at p = 64
    assert (lp >= max_pool * (1 - 1e-5)).all() and (lp <= max_pool * 4 ** (1 / p) * 1.00001).all()


def test_mixedpool_gate_moves_between_average_and_max():
    layer = create_downsample(config("mixedpool", gate="channel"), DownsamplePoint(3)).layer
    x = torch.randn(2, 3, 8, 8)
    mixed = layer[0]
    max_pool, avg_pool = nn.functional.max_pool2d(x, 2), nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(layer(x), (max_pool + avg_pool) / 2)  # the gate starts at 1/2
    with torch.no_grad():
        mixed.alpha[:] = torch.tensor([30.0, -30.0, 0.0])[:, None, None]
    out = layer(x)
    torch.testing.assert_close(out[:, 0], max_pool[:, 0])
    torch.testing.assert_close(out[:, 1], avg_pool[:, 1])


# --- end to end --------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
@pytest.mark.parametrize("name", NEW)
def test_new_operators_train_end_to_end(name, dataset, quick, tmp_path):
    run = launch([*quick, f"downsample={name}", f"dataset={dataset}", "logger=none",
                  "trainer.limit_train_batches=5", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed"
    assert (results["params"]["downsample"] > 0) == config(name).learned
    assert math.isfinite(results["test"]["loss"])


@pytest.mark.slow
def test_allcnn_c_trains_end_to_end_on_cifar10(quick, tmp_path):
    run = launch([*quick, "model=allcnn_c", "dataset=cifar10", "downsample=stride2",
                  "trainer.limit_train_batches=2", "evaluation.shift.enabled=false",
                  "evaluation.feature_maps.enabled=false", "logger=none", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed"
    assert results["params"]["total"] == 1_369_738  # All-CNN-C
