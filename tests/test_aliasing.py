"""Aliasing: the share of a point's input energy above its output's Nyquist frequency, on
hand-worked maps (constants, cosines, checkerboards, white noise) and on real networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.data.datasets import DATASETS
from downsample_study.evaluations.aliasing import aliasing, energy_spectrum, share_above_nyquist
from downsample_study.evaluations.base import EvaluationData
from downsample_study.evaluations.configs import AliasingConfig
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config
from downsample_study.nets.shapes import downsampling_points

MNIST = DATASETS["mnist"]
SIDE = 16


def share(x: torch.Tensor, stride: float | tuple[float, float]) -> float:
    strides = stride if isinstance(stride, tuple) else (stride, stride)
    return share_above_nyquist(energy_spectrum(x.view(1, 1, *x.shape[-2:])), strides)


def cosine(cycles_y: int, cycles_x: int, side: int = SIDE) -> torch.Tensor:
    """cos(2π (ky·y + kx·x) / side): ky, kx cycles per image, k/side cycles per pixel."""
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return torch.cos(2 * math.pi * (cycles_y * y + cycles_x * x) / side)


def checkerboard(side: int = SIDE) -> torch.Tensor:
    """0/1 alternating pixels: all its variation at 1/2 cycle per pixel on both axes."""
    return ((torch.arange(side)[:, None] + torch.arange(side)[None, :]) % 2).float()


@pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
@pytest.mark.parametrize("stride", [2, 4, 1.75, (2, 4)])
def test_a_constant_map_has_nothing_to_alias(value, stride):
    assert share(torch.full((SIDE, SIDE), value), stride) == 0.0


# stride 2 keeps up to 1/4 cycle per pixel = 4 cycles per 16 pixels, stride 4 up to 2
@pytest.mark.parametrize(("cycles", "stride", "expected"), [
    (1, 2, 0.0), (3, 2, 0.0), (4, 2, 0.0),  # at Nyquist itself: representable, not above
    (5, 2, 1.0), (7, 2, 1.0), (8, 2, 1.0),
    (2, 4, 0.0), (3, 4, 1.0), (6, 4, 1.0),
])
@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_a_cosine_is_all_kept_below_nyquist_and_all_aliased_above(cycles, stride, expected,
                                                                   axis):
    wave = cosine(cycles, 0) if axis == "rows" else cosine(0, cycles)
    assert share(wave, stride) == pytest.approx(expected, abs=1e-9)


def test_each_axis_has_its_own_stride():
    # 3 cycles along the columns: below Nyquist for stride 2, above it for stride 4
    wave = cosine(0, 3)
    assert share(wave, (4, 2)) == pytest.approx(0.0, abs=1e-9)
    assert share(wave, (2, 4)) == pytest.approx(1.0)


def test_a_diagonal_wave_aliases_when_either_axis_exceeds_nyquist():
    assert share(cosine(1, 6), 2) == pytest.approx(1.0)
    assert share(cosine(3, 2), 2) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("low", "high"), [(2.0, 1.0), (1.0, 3.0), (1.0, 1.0)])
def test_a_mix_of_waves_aliases_the_high_ones_share_of_energy(low, high):
    # each cosine of amplitude A holds A²·(H·W)²/2: the share is high² / (low² + high²)
    mix = low * cosine(0, 2) + high * cosine(6, 0)
    assert share(mix, 2) == pytest.approx(high**2 / (low**2 + high**2))


@pytest.mark.parametrize("stride", [2, 4, 8])
@pytest.mark.parametrize("offset", [0.0, -0.5])
def test_a_checkerboard_is_all_aliased_whatever_its_mean(stride, offset):
    # the mean of a 0/1 board is never aliased: removed, as the mean of every map is
    assert share(checkerboard() + offset, stride) == pytest.approx(1.0)


def test_the_spectrum_holds_the_maps_variance_by_parseval():
    x = torch.randn(3, 2, 12, 9) + 5.0
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    assert energy_spectrum(x).sum() == pytest.approx(12 * 9 * centred.square().sum().item())


@pytest.mark.parametrize("stride", [(2, 2), (3, 2), (1.75, 1.75), (2, 7)])
def test_white_noise_aliases_the_share_of_frequencies_above_nyquist(stride):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, 14, 12, generator=generator)
    found = share_above_nyquist(energy_spectrum(x), stride)
    # the same mask counted by hand: |k/n| > 1/(2s) per axis, the mean's bin left out
    above = [[abs(ky / 14 if ky <= 7 else ky / 14 - 1) > 1 / (2 * stride[0])
              or abs(kx / 12 if kx <= 6 else kx / 12 - 1) > 1 / (2 * stride[1])
              for kx in range(12)] for ky in range(14)]
    expected = sum(map(sum, above)) / (14 * 12 - 1)
    assert 0.0 <= found <= 1.0
    assert found == pytest.approx(expected, abs=0.02)


def lenet5() -> nn.Module:
    return build_model(model_config("lenet5"), downsample_config("maxpool"),
                       MNIST.input_shape, MNIST.num_classes).eval()


def data_of(images: torch.Tensor, initial=None) -> EvaluationData:
    split = Split(images.to(torch.uint8), torch.arange(len(images)) % 10)
    return EvaluationData(split, MNIST.mean, MNIST.std, batch_size=8, num_classes=10, seed=0,
                          title="test", initial=initial)


def pool_net(constant: bool = False) -> nn.Module:
    """A 1×1 conv then a 2×2 max pool: the conv passes the image on, or (``constant``) maps
    every image to 1."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(0.0 if constant else 1.0)
        conv.bias.fill_(1.0 if constant else 0.0)
    return nn.Sequential(conv, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10)).eval()


def boards(n: int) -> torch.Tensor:
    return (255 * checkerboard(12)).expand(n, 1, 12, 12)


def test_the_input_of_a_point_is_measured_not_its_output():
    # a max pool turns a checkerboard into a constant map: the input is all aliased
    result = aliasing(pool_net(), data_of(boards(5)), AliasingConfig(images=5, at_init=False))
    assert result.details["points"] == [
        {"name": "1", "stride": 2.0, "trained": pytest.approx(1.0), "initial": None}]
    assert result.summary == {"trained": pytest.approx(1.0)}


@pytest.mark.parametrize(("images", "expected"), [(4, 0.0), (10, 1.0), (50, 1.0)])
def test_only_the_first_images_are_measured(images, expected):
    # 4 flat grey images (no variation at all), then 6 checkerboards (all of it aliased)
    flat = torch.full((4, 1, 12, 12), 128)
    result = aliasing(pool_net(), data_of(torch.cat([flat, boards(6)])),
                      AliasingConfig(images=images, at_init=False))
    assert result.summary["trained"] == pytest.approx(expected, abs=1e-12)
    assert result.details["images"] == min(images, 10)


def test_every_point_of_lenet5_gets_an_entry_with_its_stride():
    net = lenet5()
    images = torch.randint(0, 256, (20, *MNIST.input_shape))
    result = aliasing(net, data_of(images), AliasingConfig(images=20, at_init=False))
    points = result.details["points"]
    assert [p["name"] for p in points] == downsampling_points(net) == ["down1", "down2"]
    assert [p["stride"] for p in points] == [2.0, 2.0]  # 28 → 14, 10 → 5
    assert all(0.0 < p["trained"] < 1.0 for p in points)
    assert result.summary["trained"] == pytest.approx(sum(p["trained"] for p in points) / 2)
    assert len(result.figures["spectra"].axes[0].patches) == 2


def test_the_initialised_net_is_measured_on_its_own():
    calls = []

    def initial() -> nn.Module:
        calls.append(1)
        return pool_net(constant=True).train()  # measured in eval mode all the same

    result = aliasing(pool_net(), data_of(boards(4), initial), AliasingConfig(images=4))
    assert calls == [1]
    assert result.summary == {"trained": pytest.approx(1.0), "initial": 0.0}
    assert result.details["points"][0]["initial"] == 0.0
    assert len(result.figures["spectra"].axes[0].patches) == 2  # a trained and an initial bar


@pytest.mark.parametrize("at_init", [True, False])
def test_no_initial_net_or_at_init_off_measures_the_trained_net_alone(at_init):
    def initial() -> nn.Module:
        raise AssertionError("the initialised net is not asked for")

    data = data_of(boards(4), None if at_init else initial)
    result = aliasing(pool_net(), data, AliasingConfig(images=4, at_init=at_init))
    assert set(result.summary) == {"trained"}
    assert result.details["points"][0]["initial"] is None


@pytest.mark.parametrize("training", [False, True])
def test_the_net_is_left_as_found(training, monkeypatch):
    net = lenet5().train(training)
    net.fc1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = {name: p.requires_grad for name, p in net.named_parameters()}
    aliasing(net, data_of(torch.randint(0, 256, (6, *MNIST.input_shape))),
             AliasingConfig(images=6, at_init=False))
    assert net.training is training
    assert {name: p.requires_grad for name, p in net.named_parameters()} == grads
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    # no hook left behind: a later forward pass takes no spectrum
    spectra = []
    monkeypatch.setattr(torch.fft, "fft2", lambda *a, **k: spectra.append(1))
    net.eval()(torch.zeros(2, *MNIST.input_shape))
    assert spectra == []
