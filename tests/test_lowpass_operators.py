"""dwtpool and pasa: equal to WaveCNet's and Zou et al.'s code, and the properties they claim."""

from __future__ import annotations

import math

import pytest
import pywt
import torch
import torch.nn.functional as F
from support.references.dwtpool import DWT_2D_tiny
from support.references.pasa import Downsample_PASA_group_softmax
from torch import nn
from torch.testing import assert_close

from downsample_study.nets.later_downsample_configs import DISCRETE_WAVELETS
from downsample_study.nets.operators import DownsamplePoint, create_downsample, downsample_config
from downsample_study.nets.operators.lowpass import PixelAdaptiveSmoothing
from downsample_study.nets.points import Rounding, Stands

C = 8  # channels at the downsampling point
SIZES = [(8, 8), (9, 9), (7, 10), (12, 5), (2, 3)]
WAVELETS = ["haar", "db2", "db4", "sym3", "coif1", "bior2.2", "bior3.3", "rbio1.3"]


def built(name: str, rounding=Rounding.floor, stands_for=Stands.pool, channels=C, **options):
    point = DownsamplePoint(channels, rounding, stands_for=stands_for)
    return create_downsample(downsample_config(name, **options), point).layer


def assert_same_values_and_input_gradients(out, expected, x):
    assert_close(out, expected)
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    (expected_grad,) = torch.autograd.grad(expected, x, upstream)
    assert_close(grad, expected_grad)


# --- dwtpool ------------------------------------------------------------------------------


def wavecnet_ll(wavelet: str, x: torch.Tensor) -> torch.Tensor:
    """WaveCNet's LL band of ``x``. Where the longer side is odd its layer fails (the high-pass
    matrix it builds too overruns): there, the rows its low-pass matrices define, which are
    those of the map extended by a zero."""
    h, w = x.shape[-2:]
    if max(h, w) % 2 == 0:
        return DWT_2D_tiny(wavelet)(x)
    with pytest.raises(IndexError):
        DWT_2D_tiny(wavelet)(x)
    return DWT_2D_tiny(wavelet)(F.pad(x, (0, w % 2, 0, h % 2)))[..., : h // 2, : w // 2]


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwtpool_is_wavecnets_ll_band_on_odd_and_even_maps(wavelet, size):
    x = torch.randn(2, C, *size, requires_grad=True)
    out = built("dwtpool", wavelet=wavelet)(x)
    assert out.shape == (2, C, size[0] // 2, size[1] // 2)
    assert_same_values_and_input_gradients(out, wavecnet_ll(wavelet, x), x)


@pytest.mark.parametrize("size", [(9, 9), (7, 10), (12, 5), (3, 2)], ids=str)
@pytest.mark.parametrize("wavelet", ["haar", "db2", "bior3.3"])
def test_dwtpool_at_a_ceil_point_extends_an_odd_side_by_one_zero_as_wavecnet_extends_a_map(
        wavelet, size):
    h, w = size
    x = torch.randn(2, C, h, w, requires_grad=True)
    out = built("dwtpool", Rounding.ceil, wavelet=wavelet)(x)
    assert out.shape == (2, C, math.ceil(h / 2), math.ceil(w / 2))
    extended = DWT_2D_tiny(wavelet)(F.pad(x, (0, w % 2, 0, h % 2)))
    assert_same_values_and_input_gradients(out, extended, x)
    assert_close(out[..., : h // 2, : w // 2], wavecnet_ll(wavelet, x))  # WaveCNet's own rows


@pytest.mark.parametrize("stands_for", list(Stands))
def test_dwtpool_takes_the_papers_cohen_names_for_pywavelets_biorthogonal_ones(stands_for):
    x = torch.randn(2, C, 10, 9)
    for cohen, pywt_name in [("ch2.2", "bior2.2"), ("ch3.3", "bior3.3"), ("ch5.5", "bior5.5")]:
        out = built("dwtpool", stands_for=stands_for, wavelet=cohen)(x)
        assert_close(out, DWT_2D_tiny(pywt_name)(x))
    assert downsample_config("dwtpool").wavelet == "bior3.3"  # the paper's ch3.3


@pytest.mark.parametrize(
    ("rounding", "size"),
    [(Rounding.floor, size) for size in SIZES]
    + [(Rounding.ceil, (8, 8)), (Rounding.ceil, (6, 12))],
    ids=str,
)
def test_dwtpool_haar_ll_band_is_twice_average_pooling(rounding, size):
    x = torch.randn(2, C, *size)
    assert_close(built("dwtpool", rounding, wavelet="haar")(x), 2 * F.avg_pool2d(x, 2))


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwtpool_keeps_a_constant_map_constant_where_its_filter_lies_inside_the_map(wavelet):
    n = 20
    out = built("dwtpool", wavelet=wavelet)(torch.full((1, C, n, n), 0.7))
    low = pywt.Wavelet(wavelet).rec_lo
    taps = [j for j, tap in enumerate(low) if tap != 0]
    start = len(low) // 2 - 1  # output i sums low[j] * x[2i + j - start]
    inside = [i for i in range(n // 2) if 2 * i + taps[0] - start >= 0
              and 2 * i + taps[-1] - start < n]
    assert len(inside) >= 5
    interior = out[..., inside, :][..., inside]
    # the low-pass filter sums to sqrt(2): the LL band is twice the map's level
    assert_close(interior, torch.full_like(interior, 1.4))
    if wavelet == "haar":
        assert len(inside) == n // 2


def test_dwtpool_edge_sees_the_zeros_wavecnet_extends_the_map_with():
    out = built("dwtpool", wavelet="db2")(torch.full((1, C, 8, 8), 0.7))
    low = pywt.Wavelet("db2").rec_lo  # the first row's first tap falls before the map
    edge = math.sqrt(2) - low[0]
    assert out[0, 0, 0, 0].item() == pytest.approx(0.7 * edge * edge, rel=1e-5)
    assert out[0, 0, 0, 1].item() == pytest.approx(0.7 * edge * math.sqrt(2), rel=1e-5)


def test_every_discrete_wavelet_of_pywavelets_is_accepted_and_halves_the_map():
    # the schema's own list (composing does not import PyWavelets) is PyWavelets' own
    assert set(pywt.wavelist(kind="discrete")) == DISCRETE_WAVELETS
    x = torch.randn(1, 2, 9, 6)
    for wavelet in pywt.wavelist(kind="discrete"):
        out = built("dwtpool", channels=2, wavelet=wavelet)(x)
        assert out.shape == (1, 2, 4, 3), wavelet


def test_dwtpool_is_fixed():
    layer = built("dwtpool")
    assert not list(layer.parameters()) and not downsample_config("dwtpool").learned


# --- pasa ---------------------------------------------------------------------------------


class PerGroupSoftmax(nn.Module):
    """The paper's normalisation in place of the reference's softmax over all groups' weights:
    each group's k² weights sum to 1."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.unflatten(1, (self.groups, -1)).softmax(dim=2).flatten(1, 2)


def reference_pasa(channels: int, kernel_size: int, groups: int,
                   softmax: str = "joint") -> Downsample_PASA_group_softmax:
    """The reference layer at stride 2, its BatchNorm's affine parameters away from 1 and 0;
    ``softmax="group"``: with the paper's per-group softmax."""
    layer = Downsample_PASA_group_softmax(channels, kernel_size, stride=2, group=groups)
    if softmax == "group":
        layer.softmax = PerGroupSoftmax(groups)
    with torch.no_grad():
        layer.bn.weight.uniform_(0.5, 2.0)
        layer.bn.bias.normal_()
    return layer


@pytest.mark.parametrize("softmax", ["joint", "group"])
@pytest.mark.parametrize("ceil_mode", [True, False], ids=["ceil", "floor"])
@pytest.mark.parametrize("size", [(8, 8), (9, 9), (7, 10), (12, 5)], ids=str)
@pytest.mark.parametrize(("kernel_size", "groups"), [(3, 8), (3, 2), (5, 4), (3, 1)])
def test_pasa_is_the_reference_layer_with_its_weights_in_training_and_evaluation(
        kernel_size, groups, size, ceil_mode, softmax):
    reference = reference_pasa(C, kernel_size, groups, softmax).double()
    ours = PixelAdaptiveSmoothing(C, kernel_size, groups, ceil_mode,
                                  joint_softmax=softmax == "joint").double()
    ours.load_state_dict(reference.state_dict())
    h, w = size
    rows, cols = (math.ceil(h / 2), math.ceil(w / 2)) if ceil_mode else (h // 2, w // 2)
    x = torch.randn(3, C, h, w, dtype=torch.float64, requires_grad=True)
    out, expected = ours(x), reference(x)[..., :rows, :cols]
    assert out.shape == (3, C, rows, cols)
    assert_close(out, expected)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *ours.parameters()], upstream)
    expected_grads = torch.autograd.grad(expected, [x, *reference.parameters()], upstream)
    assert len(grads) == len(expected_grads) == 4
    for grad, expected_grad in zip(grads, expected_grads):
        assert_close(grad, expected_grad)
    # BatchNorm's statistics are over the filters of every pixel, as the reference's
    assert_close(ours.bn.running_var, reference.bn.running_var)
    ours.eval()
    reference.eval()
    assert_close(ours(x), reference(x)[..., :rows, :cols])


@pytest.mark.parametrize("channels", [8, 6])
@pytest.mark.parametrize("size", [(8, 8), (9, 9), (7, 10)], ids=str)
@pytest.mark.parametrize("rounding", [Rounding.floor, Rounding.ceil])
def test_pasa_in_place_of_a_pool_is_the_references_max_pool_then_pasa(rounding, size, channels):
    layer = built("pasa", rounding, channels=channels)
    *_, ours = layer
    assert ours.groups == math.gcd(8, channels)
    reference = reference_pasa(channels, 3, ours.groups)
    ours.load_state_dict(reference.state_dict())
    h, w = size
    x = torch.randn(2, channels, h, w, requires_grad=True)
    up = rounding == Rounding.ceil
    # where the point rounds up, an odd side first repeats its last row/column (as MaxBlurPool)
    pooled = F.max_pool2d(F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if up else x, 2, 1)
    out = layer(x)
    assert out.shape[-2:] == ((math.ceil if up else math.floor)(h / 2),
                              (math.ceil if up else math.floor)(w / 2))
    assert_same_values_and_input_gradients(out, reference(pooled), x)


@pytest.mark.parametrize("rounding", [Rounding.floor, Rounding.ceil])
def test_pasa_after_a_strided_conv_is_pasa_alone(rounding):
    layer = built("pasa", rounding, Stands.conv, kernel_size=5, groups=4)
    [ours] = layer
    reference = reference_pasa(C, 5, 4)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, C, 11, 8, requires_grad=True)
    rows = 6 if rounding == Rounding.ceil else 5
    assert_same_values_and_input_gradients(layer(x), reference(x)[..., :rows, :], x)


@pytest.mark.parametrize(("channels", "groups", "used"), [(6, 8, 2), (16, 8, 8), (12, 8, 4),
                                                           (7, 8, 1), (8, 3, 1)])
def test_pasa_groups_fall_back_to_their_gcd_with_the_channels(channels, groups, used):
    *_, pasa = built("pasa", channels=channels, groups=groups)
    assert pasa.groups == used
    assert pasa.conv.out_channels == 9 * used


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("stands_for", "rounding", "size"),
    [(stands_for, rounding, size) for stands_for in Stands
     for rounding in (Rounding.floor, Rounding.ceil) for size in (1, 2, 5, 8)
     if size > 1 or rounding == Rounding.ceil],
    ids=str,
)
def test_pasa_with_filters_per_group_keeps_a_constant_map_constant(stands_for, rounding, size,
                                                                   training):
    layer = built("pasa", rounding, stands_for, kernel_size=5, softmax="group").train(training)
    with torch.no_grad():
        layer[-1].bn.bias.normal_()  # filters far from uniform
    levels = torch.rand(2, C, 1, 1)  # a constant per sample and channel
    out = layer(levels.expand(2, C, size, size))
    assert_close(out, levels.expand_as(out))


@pytest.mark.parametrize("joint_softmax", [False, True], ids=["group", "joint"])
def test_pasa_predicts_non_negative_filters_that_sum_to_one_and_vary_over_the_map(
        joint_softmax):
    pasa = PixelAdaptiveSmoothing(C, kernel_size=5, groups=4, joint_softmax=joint_softmax)
    filters = pasa.filters(torch.randn(2, C, 9, 11))
    assert filters.shape == (2, 4, 25, 5, 6)
    assert (filters >= 0).all()
    assert filters.std(dim=(-2, -1)).max() > 1e-3
    if joint_softmax:  # the released code's: the groups share 1 between them
        assert_close(filters.sum(dim=(1, 2)), torch.ones(2, 5, 6))
        assert (filters.sum(dim=2) < 0.9).all()
    else:
        assert_close(filters.sum(dim=2), torch.ones(2, 4, 5, 6))


def test_pasa_with_the_released_codes_joint_softmax_scales_a_constant_map_by_group_shares():
    layer = built("pasa", groups=4, softmax="joint")
    levels = torch.rand(2, C, 1, 1)
    x = levels.expand(2, C, 6, 6)
    out = layer(x)
    *_, pasa = layer
    shares = pasa.filters(F.max_pool2d(x, 2, 1)).sum(dim=2)  # N × groups × H' × W'
    assert_close(out, levels.expand_as(out) * shares.repeat_interleave(C // 4, dim=1))
    assert (out < levels.expand_as(out)).all()
