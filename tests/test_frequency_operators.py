"""The frequency operators (flcpool, asap, spectralpool): references, hand-worked maps, FLOPs."""

from __future__ import annotations

import math

import pytest
import torch
from support.references.asap import ASAP_padding_one
from support.references.flcpool import FLC_Pooling
from support.references.spectralpool import spectral_pool
from torch import nn

from downsample_study.nets.operators import DownsamplePoint, create_downsample, downsample_config
from downsample_study.nets.points import Rounding
from downsample_study.nets.shapes import forward_flops

C = 3
FREQUENCY = ["flcpool", "asap", "spectralpool"]


def layer(name: str, ceil: bool = False) -> nn.Module:
    point = DownsamplePoint(C, Rounding.ceil if ceil else Rounding.floor)
    return create_downsample(downsample_config(name), point).layer


def halved(n: int, ceil: bool) -> int:
    return -(-n // 2) if ceil else n // 2


def along_width(height: int, values: list[float]) -> torch.Tensor:
    """A (1, C, height, len(values)) float64 map that varies along its width only."""
    row = torch.tensor(values, dtype=torch.float64)
    return row.expand(1, C, height, len(values)).clone()


def wave(n: int, f) -> list[float]:
    return [f(2 * math.pi * i / n) for i in range(n)]


def sizes_and_roundings(sizes: list[tuple[int, int]]) -> list:
    """Each size at a floor and a ceil point, but for a 1x1 map at a floor point (it collapses:
    the collapse check's case)."""
    return [pytest.param(size, ceil, id=f"{size}-{'ceil' if ceil else 'floor'}")
            for size in sizes for ceil in (False, True) if ceil or size != (1, 1)]


@pytest.mark.parametrize("name", FREQUENCY)
@pytest.mark.parametrize(("size", "ceil"),
                         sizes_and_roundings([(1, 1), (2, 3), (5, 4), (6, 7), (9, 9), (10, 14)]))
def test_an_odd_side_rounds_as_the_point_says_down_to_one(name, size, ceil):
    out = layer(name, ceil)(torch.randn(2, C, *size))
    assert out.shape == (2, C, *(halved(n, ceil) for n in size))


# sides where FLC_Pooling's [int(n/4):int(3n/4)] slice of the shifted spectrum is the centred
# crop of the point's size: n = 4k, and odd n = 4k+1 at a floor point, 4k+3 at a ceil point
FLC_AGREES = [(8, 8, False), (8, 8, True), (12, 16, False), (4, 20, True), (9, 13, False),
              (7, 11, True), (5, 5, False), (3, 3, True)]


@pytest.mark.parametrize(("height", "width", "ceil"), FLC_AGREES, ids=str)
def test_flcpool_equals_the_reference_where_its_slice_is_the_centred_crop(height, width, ceil):
    x = torch.randn(2, C, height, width, dtype=torch.float64)
    expected = FLC_Pooling()(x)
    assert expected.shape[-2:] == (halved(height, ceil), halved(width, ceil))
    torch.testing.assert_close(layer("flcpool", ceil)(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [6, 10, 14])
def test_on_sides_of_4k_plus_2_the_reference_shifts_dc_and_flcpool_does_not(size):
    # the reference slices frequencies -(k+1)..k-1 there, so ifftshift puts DC at bin 1: a
    # constant map comes out as a cosine; the centred crop keeps it constant
    x = torch.full((1, C, size, size), 2.0, dtype=torch.float64)
    ours, reference = layer("flcpool")(x), FLC_Pooling()(x)
    assert ours.shape == reference.shape == (1, C, size // 2, size // 2)
    torch.testing.assert_close(ours, torch.full_like(ours, 2.0), rtol=0, atol=1e-12)
    assert (reference - 2.0).abs().max() > 1.0


@pytest.mark.parametrize("ceil", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize(("height", "width"), [(8, 8), (12, 16), (16, 4), (20, 20)], ids=str)
def test_asap_equals_the_reference_on_sides_of_4k(height, width, ceil):
    x = torch.randn(2, C, height, width, dtype=torch.float64)
    torch.testing.assert_close(layer("asap", ceil)(x), ASAP_padding_one()(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("size", "ceil"), sizes_and_roundings(
    [(1, 1), (2, 2), (3, 5), (7, 10), (8, 8), (9, 9), (10, 6), (15, 12)]))
def test_spectralpool_equals_the_papers_algorithm(size, ceil):
    x = torch.randn(2, C, *size, dtype=torch.float64)
    expected = spectral_pool(x, *(halved(n, ceil) for n in size))
    torch.testing.assert_close(layer("spectralpool", ceil)(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(4, 4), (8, 8), (12, 20)], ids=str)
def test_flc_reference_and_the_spectral_pooling_algorithm_agree_at_halving(size):
    # taking the real part makes the self-conjugate bins real, as TreatCornerCases does
    x = torch.randn(2, C, *size, dtype=torch.float64)
    torch.testing.assert_close(FLC_Pooling()(x), spectral_pool(x, size[0] // 2, size[1] // 2),
                               rtol=0, atol=1e-12)


# (width, map along the width, ceil, the pooled row worked by hand); the map is 8 or 9 rows tall
HAND_WORKED = {
    "below the new Nyquist: x[::2]": (8, lambda t: 3 + math.cos(t), False, [4, 3, 2, 3]),
    "the new Nyquist keeps one bin: half": (8, lambda t: math.cos(2 * t), False,
                                            [0.5, -0.5, 0.5, -0.5]),
    "above the new Nyquist: dropped, not aliased": (8, lambda t: math.cos(3 * t), False,
                                                    [0, 0, 0, 0]),
    "odd 9 to 5: the wave on the new grid": (9, lambda t: math.cos(t), True,
                                             wave(5, math.cos)),
    "odd 9 to 4: the wave on the new grid": (9, lambda t: math.cos(t), False, [1, 0, -1, 0]),
    "a sine below the new Nyquist": (8, lambda t: math.sin(t), False, [0, 1, 0, -1]),
}


@pytest.mark.parametrize("name", ["flcpool", "spectralpool"])
@pytest.mark.parametrize("case", HAND_WORKED)
def test_a_map_worked_by_hand(name, case):
    width, f, ceil, expected = HAND_WORKED[case]
    x = along_width(width, wave(width, f))
    out = layer(name, ceil)(x)
    rows = halved(width, ceil)
    torch.testing.assert_close(out, along_width(rows, expected), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(name, ceil)(x.transpose(-1, -2)),
                               along_width(rows, expected).transpose(-1, -2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FREQUENCY)
@pytest.mark.parametrize(("size", "ceil"), sizes_and_roundings([(1, 1), (5, 5), (9, 7), (3, 11)]))
def test_a_constant_odd_map_stays_constant(name, size, ceil):
    out = layer(name, ceil)(torch.full((2, C, *size), -1.5, dtype=torch.float64))
    torch.testing.assert_close(out, torch.full_like(out, -1.5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["flcpool", "spectralpool"])
@pytest.mark.parametrize("size", [(8, 8), (10, 6), (14, 12)], ids=str)
def test_a_constant_even_map_stays_constant(name, size):
    out = layer(name)(torch.full((2, C, *size), 0.7, dtype=torch.float64))
    torch.testing.assert_close(out, torch.full_like(out, 0.7), rtol=0, atol=1e-12)


def test_asap_tapers_a_wave_by_its_root_hamming_weight():
    # 9x9, cos(2πn/9) along the width, to 5x5: DC's weight along the height is 1; bins ±1 of 9
    # get the Hamming window 0.54 - 0.46·cos(2π·3/8) = 0.54 + 0.46·cos(π/4), square-rooted
    x = along_width(9, wave(9, math.cos))
    weight = math.sqrt(0.54 + 0.46 * math.cos(math.pi / 4))
    expected = along_width(5, [weight * v for v in wave(5, math.cos)])
    torch.testing.assert_close(layer("asap", ceil=True)(x), expected, rtol=0, atol=1e-12)


def test_asap_rings_less_than_flcpool_at_an_edge():
    # a step on an odd map (ASAP pads none): FLC's sharp cut rings (Gibbs) on both sides of the
    # edge; ASAP's window tapers the band, so its ringing is smaller
    x = along_width(33, [1.0] * 16 + [0.0] * 17)
    flc, asap = layer("flcpool")(x), layer("asap")(x)
    assert flc.min() < -0.05 and flc.max() > 1.05
    assert asap.min() > 0.6 * flc.min() and asap.max() < flc.max()


@pytest.mark.parametrize("name", FREQUENCY)
def test_gradients_match_autograd_of_the_reference_algorithm(name):
    x = torch.randn(2, C, 8, 8, dtype=torch.float64, requires_grad=True)
    reference = {"flcpool": FLC_Pooling(), "asap": ASAP_padding_one(),
                 "spectralpool": lambda x: spectral_pool(x, 4, 4)}[name]
    weights = torch.randn(2, C, 4, 4, dtype=torch.float64)
    ours = torch.autograd.grad((layer(name)(x) * weights).sum(), x)[0]
    theirs = torch.autograd.grad((reference(x) * weights).sum(), x)[0]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_forward_flops_count_the_ffts_of_a_frequency_operator():
    # torch runs fft2 of a real map as a complex FFT: per channel the 8x8 forward, 5·64·log2(64),
    # and the 4x4 inverse, 5·16·log2(16); torch's own counter gives FFTs nothing
    flops = forward_flops(nn.Sequential(layer("flcpool")), (C, 8, 8))
    assert flops == C * (5 * 64 * 6 + 5 * 16 * 4) == 6720
