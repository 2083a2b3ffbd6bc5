"""Equivariance at the downsampling points, on nets whose equivariance is known by construction."""

from __future__ import annotations

import math

import pytest
import torch
from support.evaluations import evaluation_data
from support.shift_probes import (
    ModeSeen,
    odd_rows_net,
    space_to_depth_net,
    strided_conv_net,
    subsampling_net,
    zero_map_net,
)
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.evaluations.configs import EVALUATIONS, EquivarianceConfig
from downsample_study.evaluations.equivariance import equivariance, shift_error
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config

EXACT = 1e-6  # float32 maps computed in another order


def noise(n: int = 16, side: int = 16) -> Split:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, side, side), generator=generator, dtype=torch.uint8)
    return Split(images, torch.zeros(n, dtype=torch.long))


def measure(net: nn.Module, split: Split | None = None, batch_size: int = 64, **options):
    cfg = EquivarianceConfig(**{"max": 4, "images": 16, **options})
    return equivariance(net, evaluation_data(split or noise(), batch_size=batch_size), cfg)


def lenet_gap(operator: str) -> nn.Module:
    """The repo's LeNet with circular padding and a global pool: APS's regime."""
    return build_model(model_config("lenet_gap", padding_mode="circular"),
                       downsample_config(operator, batch_norm=True), (1, 28, 28), 10).eval()


def test_it_is_registered():
    assert EVALUATIONS["equivariance"] is equivariance


@pytest.mark.parametrize("net", [space_to_depth_net(), strided_conv_net()])
def test_circular_convs_and_grid_exact_downsampling_are_equivariant_to_aligned_shifts(net):
    found = measure(net)
    points = found.details["points"]
    assert [p["stride"] for p in points] == [2, 4]
    for point in points:
        assert point["aligned"] <= EXACT
        assert point["unaligned"] > 0.05  # a 1-px shift moves content between channels
    assert found.summary["aligned"] <= EXACT


def test_subsampling_is_equivariant_to_aligned_shifts_only():
    found = measure(subsampling_net())
    assert found.details["points"] == [
        {"name": "2", "stride": 2, "aligned": pytest.approx(0, abs=EXACT),
         "unaligned": pytest.approx(found.summary["unaligned"])}]
    assert found.summary["unaligned"] > 0.1


@pytest.mark.parametrize(("operator", "unaligned_equivariant"), [("aps", True),
                                                                 ("maxpool", False)])
def test_aps_follows_every_shift_up_to_the_grid_and_max_pooling_does_not(
        operator, unaligned_equivariant):
    torch.manual_seed(0)
    found = measure(lenet_gap(operator), noise(side=28), max=4)
    points = found.details["points"]
    assert [(p["name"], p["stride"]) for p in points] == [("down1", 2), ("down2", 4)]
    for point in points:
        assert point["aligned"] <= 1e-5
        assert (point["unaligned"] <= 1e-5) == unaligned_equivariant
        if not unaligned_equivariant:
            assert point["unaligned"] > 0.05


def test_the_unaligned_error_rounds_the_shift_to_the_nearer_grid_shift():
    """Stride 4, a shift of 5 px: the candidates are rolls by 1 and by 2 of the unshifted map;
    the error is the smaller, each relative to the larger of the two norms."""
    unshifted = torch.randn(3, 2, 5, 5)
    near = torch.roll(unshifted, 2, dims=-1) + 0.01 * torch.randn(3, 2, 5, 5)
    expected = ((near - torch.roll(unshifted, 2, -1)).flatten(1).norm(dim=1)
                / torch.maximum(near.flatten(1).norm(dim=1), unshifted.flatten(1).norm(dim=1)))
    assert torch.allclose(shift_error(near, unshifted, by=5, stride=4, axis=-1), expected)
    for roll, error in [(1, 0), (2, 0), (0, 1), (3, 1)]:  # only the two nearest grid shifts
        rolled = torch.roll(unshifted, roll, dims=-2)
        assert (shift_error(rolled, unshifted, by=5, stride=4, axis=-2) > 0.1).all() == error
    for roll, error in [(2, 0), (1, 1), (3, 1)]:  # aligned: 8 / 4 = 2 exactly
        rolled = torch.roll(unshifted, roll, dims=-2)
        assert (shift_error(rolled, unshifted, by=8, stride=4, axis=-2) > 0.1).all() == error


def test_a_zero_map_has_zero_error():
    found = measure(zero_map_net())
    assert found.details["points"][0] == {"name": "1", "stride": 2, "aligned": 0.0,
                                          "unaligned": 0.0}


def test_a_zero_map_that_a_shift_lights_up_has_a_finite_error():
    """Bright odd rows: after ReLU and subsampling, a zero map. A 1-px vertical shift brings
    the bright rows onto the grid (error 1: all difference); a horizontal one keeps it zero
    (error 0). No shift of 1 px is aligned with the stride 2: aligned is undefined."""
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 1::2] = 255
    found = measure(odd_rows_net(), Split(images, torch.zeros(4, dtype=torch.long)), max=1)
    assert found.details["points"] == [{"name": "1", "stride": 2, "aligned": None,
                                        "unaligned": 0.5}]
    assert found.summary == {"unaligned": 0.5}  # no point defines the aligned error


def test_a_map_that_does_not_tile_the_input_has_no_stride():
    net = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Flatten())  # 15 → 8
    found = measure(net, noise(side=15))
    assert found.details["points"] == [{"name": "0", "stride": None, "aligned": None,
                                        "unaligned": None}]
    assert found.summary == {}


def test_the_same_numbers_whatever_the_batches():
    torch.manual_seed(0)
    net = subsampling_net()
    whole, batched = measure(net, batch_size=64), measure(net, batch_size=5)
    assert batched.details["points"] == [pytest.approx(p) for p in whole.details["points"]]
    assert batched.summary == pytest.approx(whole.summary)
    assert measure(net).details == whole.details
    assert all(math.isfinite(v) for v in whole.summary.values())


@pytest.mark.parametrize("training", [True, False])
def test_the_net_keeps_its_mode_and_parameters_and_is_measured_in_eval_mode(training):
    net = nn.Sequential(ModeSeen(), strided_conv_net())
    net[1][0].bias.requires_grad_(False)
    wanted = [p.requires_grad for p in net.parameters()]
    measure(net.train(training))
    assert net.training == training
    assert [p.requires_grad for p in net.parameters()] == wanted
    assert all(p.grad is None for p in net.parameters())
    assert net[0].seen and not any(net[0].seen)
