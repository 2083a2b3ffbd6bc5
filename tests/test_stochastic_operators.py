"""Stochastic and fractional max pooling: training draws, deterministic evaluation, edges."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from support.references.fractionalpool import fractional_max_pool
from support.references.stochasticpool import probabilistic_weighting, probabilities

from downsample_study.nets.operators import (
    DownsamplePoint,
    create_downsample,
    downsample_config,
)
from downsample_study.nets.points import Rounding

C = 3
SIZES = [(8, 8), (9, 9), (7, 10), (3, 2)]
# kernel 3 fits each of these without the padding a smaller map gets
FRACTIONAL_SIZES = [(8, 8), (9, 9), (7, 10), (5, 4)]


def layer_of(name: str, rounding: Rounding = Rounding.floor, **options) -> torch.nn.Module:
    """The one layer the operator adds at a C-channel point."""
    [layer] = create_downsample(downsample_config(name, **options),
                                DownsamplePoint(C, rounding)).layer
    return layer


def random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def draws(layer: torch.nn.Module, x: torch.Tensor, seeds) -> list[torch.Tensor]:
    """The layer's training outputs, each after seeding the global generator."""
    outs = []
    for seed in seeds:
        torch.manual_seed(seed)
        outs.append(layer.train()(x))
    return outs


# --- stochastic pooling ---------------------------------------------------------------------

# p = (1/8, 0, 3/8, 4/8); the weighting: (1·1 + 0·0 + 3·3 + 4·4) / 8 = 26 / 8
BY_HAND = torch.tensor([[1.0, 0.0], [3.0, 4.0]])


def test_stochastic_pool_on_a_window_worked_by_hand():
    assert probabilities(BY_HAND.flatten().tolist()) == [1 / 8, 0, 3 / 8, 4 / 8]
    out = layer_of("stochasticpool").eval()(BY_HAND[None, None])
    assert out.item() == 3.25 == probabilistic_weighting(BY_HAND[None, None]).item()


@pytest.mark.parametrize("window", [BY_HAND, torch.tensor([[2.0, 5.0], [0.5, 0.0]])],
                         ids=["by_hand", "uneven"])
def test_stochastic_pool_training_draws_each_value_with_its_probability(window):
    x = window.repeat(1, 1, 100, 100)  # 10 000 copies of the window
    [out] = draws(layer_of("stochasticpool"), x, [0])
    values = window.flatten()
    for value, p in zip(values, probabilities(values.tolist())):
        frequency = (out == value).double().mean().item()
        # 10 000 draws: a frequency's standard deviation is at most 0.005
        expected = pytest.approx(p, abs=0.02) if p > 0 else 0.0
        assert frequency == expected, value


@pytest.mark.parametrize("rounding", [Rounding.floor, Rounding.ceil])
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_stochastic_pool_evaluation_is_the_probabilistic_weighting(size, rounding):
    x = random(2, C, *size).relu()  # about half the values 0, some windows all 0
    x[0, 0, :2, :2] = 0
    layer = layer_of("stochasticpool", rounding).eval()
    ceil_mode = rounding == Rounding.ceil
    torch.testing.assert_close(layer(x), probabilistic_weighting(x, 2, 2, ceil_mode))
    assert layer(x)[0, 0, 0, 0] == 0


def test_stochastic_pool_evaluation_is_deterministic_and_draws_nothing():
    x = random(2, C, 9, 9).relu()
    layer = layer_of("stochasticpool").eval()
    state = torch.get_rng_state()
    assert torch.equal(layer(x), layer(x))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("rounding", [Rounding.floor, Rounding.ceil])
def test_stochastic_pool_training_keeps_one_value_of_each_window_and_its_gradient(rounding):
    x = random(2, C, 9, 9).relu()
    x[1, 2, 2:4, 4:6] = 0  # a window of zeros gives 0
    layer = layer_of("stochasticpool", rounding)
    ceil_mode = rounding == Rounding.ceil
    x.requires_grad_()
    [out] = draws(layer, x, [1])
    out.sum().backward()
    padded = F.pad(x.detach(), (0, 1, 0, 1)) if ceil_mode else x.detach()[..., :8, :8]
    grads = F.pad(x.grad, (0, 1, 0, 1)) if ceil_mode else x.grad[..., :8, :8]
    windows = F.unfold(padded.flatten(0, 1)[:, None], 2, stride=2)  # (N·C, 4, windows)
    grad_windows = F.unfold(grads.flatten(0, 1)[:, None], 2, stride=2)
    kept = out.detach().flatten(0, 1).flatten(1)[:, None]
    positive = windows.sum(1, keepdim=True) > 0
    # a positive window keeps one of its positive values, and that value gets the gradient
    assert ((windows == kept) & (windows > 0)).any(1, keepdim=True)[positive].all()
    assert (kept[~positive] == 0).all() and out[1, 2, 1, 2] == 0
    assert torch.equal(grad_windows.sum(1, keepdim=True)[positive],
                       torch.ones_like(kept)[positive])
    assert (grad_windows[(windows != kept).expand_as(windows)] == 0).all()


def test_stochastic_pool_training_draws_differ_and_follow_the_seed():
    x = random(2, C, 8, 8).relu()
    first, again, other = draws(layer_of("stochasticpool"), x, [5, 5, 6])
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("size", [(8, 8), (2, 6)], ids=str)
def test_stochastic_pool_draws_the_same_in_any_memory_layout(size):
    # a pack hands each member a channel slice of a channels-last map: its solo run's draws
    x = random(2, 2 * C, *size).relu().contiguous(memory_format=torch.channels_last)
    layer = layer_of("stochasticpool")
    dense, sliced = draws(layer, x[:, :C].contiguous(), [7]) + draws(layer, x[:, :C], [7])
    torch.testing.assert_close(dense, sliced, rtol=0, atol=0)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_stochastic_pool_counts_a_negative_input_as_zero(training):
    x = random(2, C, 8, 8)
    x[0, 0, :2, :2] = -torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # a window of negatives
    layer = layer_of("stochasticpool").train(training)
    torch.manual_seed(2)
    out = layer(x)
    torch.manual_seed(2)
    torch.testing.assert_close(out, layer(x.relu()), rtol=0, atol=0)
    assert out[0, 0, 0, 0] == 0 and (out >= 0).all()


# --- fractional max pooling -----------------------------------------------------------------


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("size", FRACTIONAL_SIZES, ids=str)
def test_fractional_pool_trains_on_grahams_regions_drawn_from_the_global_generator(size, kernel):
    x = random(2, C, *size)
    layer = layer_of("fractionalpool", kernel_size=kernel)
    out_size = (size[0] // 2, size[1] // 2)
    [out] = draws(layer, x, [3])
    torch.manual_seed(3)
    samples = torch.rand(2, C, 2, dtype=torch.float64)  # what torch's op draws first
    for n in range(2):
        for c in range(C):
            u = (samples[n, c, 0].item(), samples[n, c, 1].item())
            torch.testing.assert_close(out[n, c], fractional_max_pool(x[n, c], kernel,
                                                                      out_size, u))


@pytest.mark.parametrize(("kernel", "size"), [(2, (9, 9)), (2, (7, 10)), (3, (8, 8))], ids=str)
def test_fractional_pool_training_draws_vary_on_odd_sides_or_with_kernel_3(kernel, size):
    x = random(2, C, *size)
    outs = draws(layer_of("fractionalpool", kernel_size=kernel), x, range(6))
    assert any(not torch.equal(outs[0], out) for out in outs[1:])


def test_fractional_pool_at_one_half_with_kernel_2_max_pools_an_even_map_whatever_the_draw():
    x = random(2, C, 10, 12)
    for out in draws(layer_of("fractionalpool"), x, range(4)):
        torch.testing.assert_close(out, F.max_pool2d(x, 2), rtol=0, atol=0)


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("size", FRACTIONAL_SIZES, ids=str)
def test_fractional_pool_evaluation_is_reproducible_on_regions_fixed_at_u_one_half(size, kernel):
    x = random(2, C, *size)
    layer = layer_of("fractionalpool", kernel_size=kernel).eval()
    state = torch.get_rng_state()
    out = layer(x)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn
    assert torch.equal(layer(x), out)
    out_size = (size[0] // 2, size[1] // 2)
    for n in range(2):
        for c in range(C):
            torch.testing.assert_close(out[n, c], fractional_max_pool(x[n, c], kernel, out_size,
                                                                      (0.5, 0.5)))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("kernel", "size", "pooled"),
                         [(2, (1, 1), (1, 1)), (3, (1, 1), (1, 1)), (3, (3, 5), (2, 3))], ids=str)
def test_fractional_pool_pads_a_map_too_small_for_its_windows_by_repeating_the_edge(
        kernel, size, pooled, training):
    x = random(2, C, *size)
    out = layer_of("fractionalpool", Rounding.ceil, kernel_size=kernel).train(training)(x)
    assert out.shape[-2:] == pooled
    # each output is the max of a window of the map (the repeated edge adds no new value)
    assert ((out[..., None] == x.flatten(2)[:, :, None, None]).any(-1)).all()
    assert (out <= x.amax(dim=(2, 3), keepdim=True)).all()
    if size == (1, 1):
        torch.testing.assert_close(out, x)
