"""SoftPool and LIP against their reference code: outputs, gradients, and where they differ."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from support.references.lip import SimplifiedLIP, lip2d
from support.references.softpool import soft_pool2d

from downsample_study.nets.operators import (
    DownsamplePoint,
    create_downsample,
    downsample_config,
)
from downsample_study.nets.operators.importance import LocalImportancePool, SoftPool
from downsample_study.nets.points import Rounding

C = 4
SIZES = [(8, 8), (9, 9), (7, 10), (3, 4)]  # kernel 3 fits each


def layer_of(name: str, rounding: Rounding = Rounding.floor, **options) -> torch.nn.Module:
    """The one layer the operator adds at a C-channel point."""
    [layer] = create_downsample(downsample_config(name, **options),
                                DownsamplePoint(C, rounding)).layer
    return layer


def random(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale


def outputs_and_gradients(layer, x: torch.Tensor):
    """The output, and the input's gradient of a fixed random projection of it."""
    x = x.clone().requires_grad_()
    out = layer(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights).sum().backward()
    return out.detach(), x.grad


# --- SoftPool -------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"kernel_size": 3}, {"kernel_size": 3, "stride": 1}],
                         ids=str)
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_softpool_equals_the_reference_cpu_path_in_outputs_and_gradients(size, options):
    x = random(2, C, *size, scale=3.0)
    layer = layer_of("softpool", **options)
    kernel, stride = options.get("kernel_size", 2), options.get("stride", 2)
    ours, our_grad = outputs_and_gradients(layer, x)
    reference, reference_grad = outputs_and_gradients(
        lambda t: soft_pool2d(t, kernel, stride), x)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, reference_grad, rtol=1e-12, atol=1e-12)


def test_softpool_at_a_ceil_point_weighs_an_overhanging_window_over_the_values_it_holds():
    x = random(2, C, 9, 9)
    out = layer_of("softpool", Rounding.ceil)(x)
    assert out.shape[-2:] == (5, 5)
    torch.testing.assert_close(out[..., :4, :4], soft_pool2d(x))
    # the last column's windows hold 2×1 values, the last row's 1×2, the corner one value
    torch.testing.assert_close(out[..., :4, 4:], soft_pool2d(x[..., :8, 8:], (2, 1)))
    torch.testing.assert_close(out[..., 4:, :4], soft_pool2d(x[..., 8:, :8], (1, 2)))
    torch.testing.assert_close(out[..., 4, 4], x[..., 8, 8])


def softpool_definition(window: list[float]) -> float:
    """Σ e^{aᵢ} aᵢ / Σ e^{aⱼ} as written, in float64 (finite for |a| <= 700)."""
    return sum(math.exp(a) * a for a in window) / sum(math.exp(a) for a in window)


@pytest.mark.parametrize("level", [-650.0, -120.0, 95.0, 600.0])
def test_softpool_stays_finite_and_exact_where_the_references_exp_overflows(level):
    # float32 e^a overflows above 88.7 and underflows below -103: the reference gives NaN
    x = (level + random(1, C, 6, 6, seed=2)).float()
    ours, grad = outputs_and_gradients(SoftPool(), x)
    assert not torch.isfinite(soft_pool2d(x)).all()
    expected = torch.tensor(
        [[[[softpool_definition([float(v) for v in x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                                 .flatten()]) for j in range(3)] for i in range(3)]
          for c in range(C)]], dtype=torch.float64)
    # float32 rounds a value near 600 to 3e-5: a few roundings of the weighted sum
    torch.testing.assert_close(ours.double(), expected, rtol=0, atol=abs(level) * 1e-6)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_softpool_lies_between_the_windows_mean_and_max_and_keeps_a_constant_window():
    x = random(2, C, 8, 8)
    out = SoftPool()(x)
    assert (out >= F.avg_pool2d(x, 2) - 1e-12).all() and (out <= F.max_pool2d(x, 2)).all()
    torch.testing.assert_close(SoftPool()(torch.full((1, C, 4, 4), 0.3)),
                               torch.full((1, C, 2, 2), 0.3))


# --- LIP ------------------------------------------------------------------------------------


def lip_pair(seed: int = 0) -> tuple[LocalImportancePool, SimplifiedLIP]:
    """Ours and the reference module, with the same (random, non-default) weights."""
    torch.manual_seed(seed)
    ours = layer_of("lip").double()
    with torch.no_grad():  # away from the zero conv it starts at, so every weight matters
        ours.conv.weight.normal_(0, 0.2)
        ours.norm.weight.uniform_(0.5, 1.5)
        ours.norm.bias.uniform_(-0.5, 0.5)
    reference = SimplifiedLIP(C).double()
    reference.load_state_dict({"logit.conv.weight": ours.conv.weight,
                               "logit.bn.weight": ours.norm.weight,
                               "logit.bn.bias": ours.norm.bias})
    return ours, reference


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("size", [*SIZES, (1, 6)], ids=str)
def test_lip_equals_simplified_lip_with_copied_weights_in_outputs_and_gradients(size, training):
    ours, reference = lip_pair()
    ours.train(training)
    reference.train(training)
    x = random(2, C, *size, seed=3).relu()
    out, grad = outputs_and_gradients(ours, x)
    expected, expected_grad = outputs_and_gradients(reference, x)
    assert out.shape[-2:] == tuple(math.ceil(n / 2) for n in size)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)
    for mine, theirs in [(ours.conv.weight, reference.logit.conv.weight),
                         (ours.norm.weight, reference.logit.bn.weight),
                         (ours.norm.bias, reference.logit.bn.bias)]:
        assert mine.grad.abs().sum() > 0
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-10, atol=1e-12)


def test_lip_returns_a_1x1_map_as_lip2d_does_where_instance_norm_cannot_run():
    ours, reference = lip_pair()
    x = random(2, C, 1, 1, seed=4)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        reference(x)
    # a weighted average of one value is that value, whatever the weights
    torch.testing.assert_close(lip2d(x, random(2, C, 1, 1, seed=5)), x)
    torch.testing.assert_close(ours(x), x)


def test_lip_starts_as_average_pooling_over_the_values_each_window_holds():
    # LIP-ResNet's start: a zero-filled conv makes the importance map constant
    ours = LocalImportancePool(C).double()
    assert not ours.conv.weight.any()
    x = random(2, C, 9, 8)
    torch.testing.assert_close(ours(x), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False))


def test_lip_importance_weights_are_bounded_by_the_gate():
    # logits 12·σ(·) lie in (0, 12): no window's weights overflow, even for huge inputs
    ours, _ = lip_pair()
    x = random(1, C, 8, 8, seed=6, scale=1e4)
    out = ours(x)
    assert torch.isfinite(out).all()
    assert (out <= F.max_pool2d(x, 3, 2, 1) + 1e-6).all()
    assert (out >= -F.max_pool2d(-x, 3, 2, 1) - 1e-6).all()
