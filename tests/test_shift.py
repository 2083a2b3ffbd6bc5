"""Shift robustness: the shifts themselves, and consistency on nets whose invariance is known."""

from __future__ import annotations

import pytest
import torch
from support import launch
from support.evaluations import evaluation_data
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.evaluations.base import logged_metrics
from downsample_study.evaluations.configs import (
    FeatureMapsConfig,
    ShiftConfig,
    evaluation_schema,
)
from downsample_study.evaluations.running import run_evaluations
from downsample_study.evaluations.shift import (
    circular_regime,
    random_offsets,
    shift_images,
    shift_robustness,
)
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config

MEAN, STD = (0.2,), (0.3,)


@pytest.fixture
def split() -> Split:
    """Noise images of different brightness, so that even a global average separates them."""
    generator = torch.Generator().manual_seed(0)
    brightness = torch.rand(300, 1, 1, 1, generator=generator)
    images = (255 * brightness * torch.rand(300, 1, 12, 12, generator=generator)).to(torch.uint8)
    return Split(images, torch.randint(0, 10, (300,), generator=generator))


def evaluate(net: nn.Module, split: Split, **options) -> dict:
    """The shift evaluation alone, run as a job runs it."""
    settings = evaluation_schema()(shift=ShiftConfig(**{"max": 3, **options}),
                                   feature_maps=FeatureMapsConfig(enabled=False))
    torch.manual_seed(1)
    found = run_evaluations(net, evaluation_data(split, MEAN, STD), settings, say=lambda _: None)
    return found["shift"].details


class Constant(nn.Module):
    """Ignores its input: always the same logits."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.arange(10.0))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def pointwise_then_global_pool() -> nn.Module:
    """A 1×1 conv map averaged over the image: invariant to any permutation of the pixels."""
    return nn.Sequential(nn.Conv2d(1, 10, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def flatten_linear() -> nn.Module:
    """Every pixel position has its own weights: not shift invariant at all."""
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 10))


@pytest.mark.parametrize("offset", [(0, 0), (1, 2), (-3, 1), (2, -2)])
def test_circular_shift_is_a_roll_and_zero_shift_fills(offset):
    x = torch.arange(2 * 3 * 6 * 7, dtype=torch.float32).view(2, 3, 6, 7)
    offsets = torch.tensor([offset, offset])
    assert torch.equal(shift_images(x, offsets, "circular"), torch.roll(x, offset, (2, 3)))
    zero = shift_images(x, offsets, "zero", fill=-1.0)
    dy, dx = offset
    kept = zero[:, :, max(dy, 0) : 6 + min(dy, 0), max(dx, 0) : 7 + min(dx, 0)]
    assert torch.equal(kept, x[:, :, max(-dy, 0) : 6 - max(dy, 0), max(-dx, 0) : 7 - max(dx, 0)])
    assert (zero == -1).sum() == 2 * 3 * (6 * 7 - kept.shape[2] * kept.shape[3])


def test_each_image_gets_its_own_shift():
    x = torch.ones(2, 1, 4, 4)
    out = shift_images(x, torch.tensor([[0, 0], [0, 2]]), "zero")
    assert out[0].sum() == 16 and out[1].sum() == 8


def test_a_net_that_ignores_its_input_is_perfectly_consistent(split):
    result = evaluate(Constant(), split)
    expected = (split.labels == 9).float().mean().item()  # its constant answer is class 9
    for mode in ("zero", "circular"):
        assert result[mode]["consistency"] == 1.0
        assert result[mode]["acc_top1"] == pytest.approx(expected)


def test_global_pooling_of_a_pointwise_map_is_circular_shift_invariant(split):
    torch.manual_seed(0)
    net = pointwise_then_global_pool()
    predictions = net((split.images.float() / 255 - MEAN[0]) / STD[0]).argmax(1)
    assert len(predictions.unique()) > 1  # not a constant net in disguise
    unshifted = evaluate(net, split, max=0)["circular"]["acc_top1"]
    result = evaluate(net, split)
    assert result["circular"]["consistency"] == 1.0
    assert result["circular"]["acc_top1"] == pytest.approx(unshifted)
    # with zero padding pixels leave the frame: no longer invariant
    assert result["zero"]["consistency"] < 1.0


def test_a_net_without_shift_invariance_is_inconsistent(split):
    torch.manual_seed(0)
    result = evaluate(flatten_linear(), split)
    assert result["circular"]["consistency"] < 0.9
    assert evaluate(flatten_linear(), split, max=0)["circular"]["consistency"] == 1.0


def test_deterministic_given_the_seed_and_restores_train_mode(split):
    torch.manual_seed(0)
    net = flatten_linear().train()
    first, again = evaluate(net, split), evaluate(net, split)
    assert first == again and net.training
    assert evaluate(net, split, seed=1) != first
    offsets = random_offsets(300, 3, 2, seed=0)
    assert offsets.shape == (2, 2, 300, 2) and offsets.abs().max() == 3
    assert torch.equal(offsets, random_offsets(300, 3, 2, seed=0))


@pytest.mark.parametrize(("model", "options", "operator", "shape", "stride", "invariant"), [
    ("lenet_gap", {"padding_mode": "circular"}, "maxpool", (1, 28, 28), 4, True),
    ("lenet_gap", {"padding_mode": "circular"}, "aps", (1, 28, 28), 4, True),
    ("resnet20", {"padding_mode": "circular"}, "stride2_fold", (3, 32, 32), 4, True),
    # out: zero padding; BlurPool's reflect padding; a flatten head on maps that do not halve
    # evenly (28 → 14 → 5); a map that ends at 1×1 (its stride is not the whole image)
    ("lenet_gap", {}, "maxpool", (1, 28, 28), 4, False),
    ("resnet20", {}, "aps", (3, 32, 32), 4, False),
    ("resnet20", {"padding_mode": "circular"}, "blurpool", (3, 32, 32), 4, False),
    ("lenet5", {}, "aps", (1, 28, 28), None, False),
    ("vgg11", {}, "maxpool", (3, 32, 32), 16, False),
])
def test_the_regime_is_invariance_to_circular_shifts_by_the_total_stride(
        model, options, operator, shape, stride, invariant):
    torch.manual_seed(0)
    net = build_model(model_config(model, **options),
                      downsample_config(operator, batch_norm=True), shape, 10).double().eval()
    x = torch.randn(8, *shape, dtype=torch.float64)
    with torch.no_grad():
        assert circular_regime(net, x) == {"stride": stride, "invariant": invariant}
        if invariant:  # and so for every multiple of the stride, not for a shift of 1 px
            for by in (2 * stride, 3 * stride):
                assert torch.allclose(net(torch.roll(x, (by, -by), (2, 3))), net(x))
            moved = net(torch.roll(x, 1, 3))
            assert torch.allclose(moved, net(x)) == (operator == "aps")


def test_the_shift_evaluation_records_the_regime(split):
    torch.manual_seed(0)
    assert evaluate(pointwise_then_global_pool(), split)["regime"] == {"stride": 1,
                                                                       "invariant": True}
    assert evaluate(flatten_linear(), split)["regime"] == {"stride": 1, "invariant": False}


def test_metric_names_are_those_logged_before_the_evaluations_had_nodes(split):
    measured = shift_robustness(flatten_linear().eval(), evaluation_data(split, MEAN, STD),
                                ShiftConfig())
    assert sorted(logged_metrics({"shift": measured.record()})) == [
        "test/shift_acc_circular", "test/shift_acc_zero", "test/shift_consistency_circular",
        "test/shift_consistency_zero"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [("evaluation.shift.modes=[zero,reflect]", ["evaluation.shift.modes", "reflect", "circular"]),
     ("evaluation.shift.max=-1", ["evaluation.shift.max"]),
     ("evaluation.feature_maps.images=11", ["evaluation.feature_maps.images", "1 to 10"]),
     ("evaluation.shift_sampels=2", ["shift_sampels"])],
)
def test_bad_evaluation_config_fails_at_start_up(override, expected, quick, capsys):
    run = launch([*quick, override, "logger=none", "hydra.run.dir=out"], capsys)
    assert run.exit_code != 0
    for word in expected:
        assert word in run.output, (word, run.output[-2000:])
    assert "Traceback" not in run.output
