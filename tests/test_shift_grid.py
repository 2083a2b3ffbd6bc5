"""The shift grid: accuracy at every offset, on nets whose behaviour under shifts is known."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure
from support.evaluations import evaluation_data
from support.shift_probes import (
    BrightestColumn,
    ModeSeen,
    Uniform,
    flatten_linear,
    pointwise_then_global_pool,
    stripe_parity,
)
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.evaluations.configs import EVALUATIONS, ShiftGridConfig
from downsample_study.evaluations.shift_grid import shift_grid

SIDE = 12
MODES = ("circular", "zero")
KEYS = ("mean", "worst", "ripple", "flip_rate", "fidelity")


def noise(n: int = 16, labels: torch.Tensor | None = None) -> Split:
    """Noise images of different brightness, so that even a global average separates them."""
    generator = torch.Generator().manual_seed(0)
    brightness = torch.rand(n, 1, 1, 1, generator=generator)
    images = (255 * brightness * torch.rand(n, 1, SIDE, SIDE, generator=generator))
    drawn = torch.randint(0, 10, (n,), generator=generator)
    return Split(images.to(torch.uint8), drawn if labels is None else labels)


def one_bright_pixel(rows_cols: list[tuple[int, int]], labels: list[int], side: int = 8) -> Split:
    images = torch.zeros(len(labels), 1, side, side, dtype=torch.uint8)
    for i, (row, col) in enumerate(rows_cols):
        images[i, 0, row, col] = 255
    return Split(images, torch.tensor(labels))


def grid(net: nn.Module, split: Split, batch_size: int = 64, **options):
    cfg = ShiftGridConfig(**{"radius": 2, "modes": list(MODES), "images": 0, **options})
    return shift_grid(net, evaluation_data(split, batch_size=batch_size), cfg)


def clean_predictions(net: nn.Module, split: Split) -> torch.Tensor:
    data = evaluation_data(split)
    with torch.no_grad():
        return net(data.normalise(split.images.float() / 255)).argmax(1)


def half_right(net: nn.Module) -> Split:
    """``noise()`` labelled as ``net`` classifies the first half and not the second: clean
    accuracy 0.5 exactly."""
    predicted = clean_predictions(net, noise())
    return noise(labels=torch.where(torch.arange(16) < 8, predicted, (predicted + 1) % 10))


def test_it_is_registered():
    assert EVALUATIONS["shift_grid"] is shift_grid


def test_a_circularly_invariant_net_loses_nothing_on_the_circular_grid():
    net = pointwise_then_global_pool().eval()
    predicted = clean_predictions(net, noise())
    assert len(predicted.unique()) > 1  # not a constant net in disguise
    found = grid(net, half_right(net))
    circular = found.details["circular"]
    assert circular["clean_accuracy"] == 0.5
    assert found.summary["worst_circular"] == found.summary["mean_circular"] == 0.5
    assert found.summary["fidelity_circular"] == circular["lowest_offset_accuracy"] == 0.5
    assert found.summary["flip_rate_circular"] == found.summary["ripple_circular"] == 0
    # zero fill brings in dark pixels: no longer invariant
    assert found.summary["flip_rate_zero"] > 0


@pytest.mark.parametrize("net", [flatten_linear(SIDE), pointwise_then_global_pool()])
@pytest.mark.parametrize("mode", MODES)
def test_the_centre_cell_is_the_clean_accuracy(net, mode):
    details = grid(net, half_right(net), modes=[mode]).details[mode]
    assert details["accuracy"][2][2] == details["clean_accuracy"] == 0.5


def test_a_net_that_weighs_each_position_flips_between_neighbours():
    found = grid(flatten_linear(SIDE), noise())
    for mode in MODES:
        assert found.summary[f"flip_rate_{mode}"] > 0.05


@pytest.mark.parametrize("net", [flatten_linear(SIDE),
                                 nn.Sequential(nn.AvgPool2d(2), flatten_linear(SIDE // 2)),
                                 nn.Sequential(nn.MaxPool2d(2), flatten_linear(SIDE // 2))])
@pytest.mark.parametrize("mode", MODES)
def test_the_grid_adversary_is_at_most_the_lowest_offset_and_that_at_most_the_mean(net, mode):
    split = noise(labels=clean_predictions(net, noise()))  # all right when unshifted
    found = grid(net, split, modes=[mode])
    summary, details = found.summary, found.details[mode]
    assert summary[f"worst_{mode}"] <= details["lowest_offset_accuracy"] <= summary[f"mean_{mode}"]
    # faithful pairs are right where the unshifted image is right, and right where shifted
    assert summary[f"fidelity_{mode}"] <= min(details["clean_accuracy"], summary[f"mean_{mode}"])
    assert summary[f"worst_{mode}"] < 1  # the net is not invariant: a real comparison


@pytest.mark.parametrize("vertical", [False, True])
def test_hand_worked_stripes_alternate_with_the_parity_of_the_offset(vertical):
    """Bright even columns (rows); the net subsamples by 2 and answers 0 iff it sees them, i.e.
    at an even dx (dy). Grid 3×3 (radius 1), label 0: accuracy per row (column) [0, 1, 0]."""
    images = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    images[..., ::2] = 255
    expected = torch.tensor([[0.0, 1.0, 0.0]] * 3)
    if vertical:
        images, expected = images.transpose(2, 3), expected.T
    found = grid(stripe_parity(), Split(images, torch.tensor([0])), radius=1, modes=["circular"])
    assert found.details["circular"]["accuracy"] == expected.tolist()
    assert found.details["stride"] == found.details["ripple_period"] == 2
    assert found.summary == pytest.approx({
        "mean_circular": 1 / 3,
        "worst_circular": 0.0,
        "ripple_circular": 1.0,  # even offsets: accuracy 1, odd: 0
        "flip_rate_circular": 6 / 12,  # 2 changes in each of 3 lines, of 12 neighbour pairs
        "fidelity_circular": 3 / 9,
    })


def test_hand_worked_grid_adversary_below_every_offset():
    """One bright pixel in column 3 (label 0) or 4 (label 1); the net answers 1 iff the pixel
    lies in column 4 or right of it. Per dx = -1, 0, 1 the first image is right, right, wrong;
    the second wrong, right, right: every offset keeps half, no image survives all."""
    split = one_bright_pixel([(3, 3), (3, 4)], [0, 1])
    found = grid(BrightestColumn(4), split, radius=1, modes=["circular"])
    assert found.details["circular"]["accuracy"] == [[0.5, 1.0, 0.5]] * 3
    assert found.details["circular"]["lowest_offset_accuracy"] == 0.5
    assert found.details["stride"] == found.details["ripple_period"] == 1
    assert found.summary == pytest.approx({
        "mean_circular": 2 / 3,
        "worst_circular": 0.0,
        "ripple_circular": 0.0,  # no downsampling: one phase
        "flip_rate_circular": 6 / 24,  # one change per row, 3 rows, 2 images; 12 pairs each
        "fidelity_circular": 12 / 18,  # both unshifted answers right, kept at 2 of 3 dx
    })


def test_zero_fill_uncovers_raw_pixel_zero():
    """A black image stays uniform under zero-filled shifts only if the fill is raw black."""
    split = Split(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 0]))
    found = grid(Uniform(), split, modes=["zero"])
    assert found.summary["worst_zero"] == found.summary["fidelity_zero"] == 1.0


def test_the_same_numbers_whatever_the_batches_and_on_every_call():
    torch.manual_seed(0)
    net = flatten_linear(SIDE)
    first = grid(net, noise(), batch_size=64)
    again, batched = grid(net, noise(), batch_size=64), grid(net, noise(), batch_size=5)
    for other in (again, batched):
        assert other.summary == first.summary and other.details == first.details


@pytest.mark.parametrize("training", [True, False])
def test_the_net_keeps_its_mode_and_parameters_and_is_measured_in_eval_mode(training):
    net = nn.Sequential(ModeSeen(), pointwise_then_global_pool())
    net[1][0].bias.requires_grad_(False)
    wanted = [p.requires_grad for p in net.parameters()]
    grid(net.train(training), noise())
    assert net.training == training
    assert [p.requires_grad for p in net.parameters()] == wanted
    assert all(p.grad is None for p in net.parameters())
    assert net[0].seen and not any(net[0].seen)


def test_details_and_figure():
    found = grid(nn.Sequential(nn.MaxPool2d(2), flatten_linear(SIDE // 2)), noise(), images=10)
    assert set(found.summary) == {f"{key}_{mode}" for key in KEYS for mode in MODES}
    assert all(isinstance(value, float) for value in found.summary.values())
    details = found.details
    assert (details["radius"], details["images"], details["stride"]) == (2, 10, 2)
    for mode in MODES:
        assert torch.tensor(details[mode]["accuracy"]).shape == (5, 5)
        # every accuracy is a count of 10 images
        assert all((10 * a) == pytest.approx(round(10 * a)) for row in details[mode]["accuracy"]
                   for a in row)
    figure = found.figures["heatmap"]
    assert isinstance(figure, Figure)
    assert [ax.get_title() for ax in figure.axes[:2]] == ["circular fill", "zero fill"]
    assert len(figure.axes) == 3  # and the colour bar
    assert "a test" in figure.get_suptitle()
