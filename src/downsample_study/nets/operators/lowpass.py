"""Low-pass operators: a filter before the subsampling, fixed (Zhang's binomial blur, WaveCNet's
wavelet LL band) or predicted at each pixel (Zou et al.'s PASA)."""

from __future__ import annotations

import math

import pywt
import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.nets.downsample_configs import BlurPoolConfig, BlurVariant
from downsample_study.nets.later_downsample_configs import (
    DWTPoolConfig,
    PASAConfig,
    PASASoftmax,
    pywt_wavelet_name,
)
from downsample_study.nets.layers import BlurPool, EvenSize
from downsample_study.nets.operators.core import added, own_conv, register_downsample
from downsample_study.nets.points import Downsample, DownsamplePoint, Stands


class WaveletLowpass(nn.Module):
    """The LL band of a one-level 2D discrete wavelet transform, WaveCNet's downsampling.

    WaveCNet (Li et al., CVPR 2020) multiplies by matrices built per map size from PyWavelets'
    ``rec_lo``, which extend the map by zeros and give floor(N / 2); the same sums as a strided
    depthwise conv here (PyWavelets computes on numpy arrays, without gradients). Where
    ``ceil_mode``, an odd side is first extended by one zero.
    """

    def __init__(self, channels: int, wavelet: str = "haar", ceil_mode: bool = False):
        super().__init__()
        low = torch.tensor(pywt.Wavelet(wavelet).rec_lo, dtype=torch.float64)
        kernel = torch.outer(low, low).float()
        self.register_buffer("kernel", kernel.expand(channels, 1, -1, -1).contiguous())
        self.padding = len(low) // 2 - 1  # WaveCNet's first row starts this far before the map
        self.wavelet = wavelet
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ceil_mode:
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return F.conv2d(x, self.kernel, stride=2, padding=self.padding, groups=x.shape[1])

    def extra_repr(self) -> str:
        return f"{self.kernel.shape[0]}, wavelet={self.wavelet}, ceil_mode={self.ceil_mode}"


class PixelAdaptiveSmoothing(nn.Module):
    """Pixel-adaptive low-pass filters, then subsample by 2 (Zou et al., BMVC 2020: PASA).

    A conv (no bias), BatchNorm and a softmax predict at each pixel one k×k filter per channel
    group, non-negative and summing to 1 (``joint_softmax``: all groups' weights together sum to
    1, as the released code); the map, reflection-padded (replicated where too small to
    reflect), is filtered with them at every second pixel: ceil(N / 2), or floor(N / 2) where
    not ``ceil_mode``. BatchNorm sees the filters of every pixel, as in the reference.
    """

    def __init__(self, channels: int, kernel_size: int = 3, groups: int = 8,
                 ceil_mode: bool = True, joint_softmax: bool = False):
        super().__init__()
        if kernel_size % 2 == 0 or channels % groups:
            raise ValueError(f"PASA needs an odd kernel_size and groups dividing the channels, "
                             f"got kernel_size={kernel_size}, groups={groups}, "
                             f"channels={channels}")
        self.kernel_size, self.groups, self.ceil_mode = kernel_size, groups, ceil_mode
        self.joint_softmax = joint_softmax
        taps = kernel_size * kernel_size
        self.conv = nn.Conv2d(channels, groups * taps, kernel_size, bias=False)
        self.bn = nn.BatchNorm2d(groups * taps)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size // 2
        return F.pad(x, (p, p, p, p), mode="reflect" if min(x.shape[-2:]) > p else "replicate")

    def filters(self, x: torch.Tensor) -> torch.Tensor:
        """Each kept pixel's filter, per group: N × groups × k² × H' × W'."""
        halve = math.ceil if self.ceil_mode else math.floor
        rows, cols = (halve(n / 2) for n in x.shape[-2:])
        logits = self.bn(self.conv(self.pad(x)))[..., : 2 * rows : 2, : 2 * cols : 2]
        if self.joint_softmax:
            return logits.softmax(dim=1).unflatten(1, (self.groups, -1))
        return logits.unflatten(1, (self.groups, -1)).softmax(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        filters = self.filters(x)
        rows, cols = filters.shape[-2:]
        patches = F.unfold(self.pad(x), self.kernel_size, stride=2)  # N × C·k² × ceil(H/2)·...
        patches = patches.view(n, self.groups, c // self.groups, -1, (h + 1) // 2, (w + 1) // 2)
        patches = patches[..., :rows, :cols]
        return (patches * filters.unsqueeze(2)).sum(dim=3).flatten(1, 2)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, groups={self.groups}, stride=2, "
                f"ceil_mode={self.ceil_mode}, joint_softmax={self.joint_softmax}")


@register_downsample("blurpool")
def blurpool(cfg: BlurPoolConfig, point: DownsamplePoint) -> Downsample:
    """Anti-aliased downsampling: MaxBlurPool, BlurPool or ConvBlurPool (Zhang, ICML 2019)."""
    c = point.channels
    blur = BlurPool(c, cfg.filter_size)
    if cfg.variant == BlurVariant.avg or (cfg.variant == BlurVariant.max
                                          and point.stands_for == Stands.conv):
        return added(blur)
    if cfg.variant == BlurVariant.conv:
        return added(*own_conv(cfg, c, c, 3), nn.ReLU(), blur)
    # Zhang's MaxBlurPool as it is on even maps; where a point rounds up, an odd side is
    # first padded by repeating its last row/column, so that window is the max of what is in it
    edge = [EvenSize(ceil_mode=True, mode="replicate")] if point.ceil_mode() else []
    return added(*edge, nn.MaxPool2d(2, stride=1), blur)


@register_downsample("dwtpool")
def dwtpool(cfg: DWTPoolConfig, point: DownsamplePoint) -> Downsample:
    """Wavelet pooling: the DWT's low-frequency band LL (Li et al., WaveCNet, CVPR 2020)."""
    # in place of a max pool, a strided conv and an average pool alike, as WaveCNet's nets
    return added(WaveletLowpass(point.channels, pywt_wavelet_name(cfg.wavelet),
                                point.ceil_mode()))


@register_downsample("pasa")
def pasa(cfg: PASAConfig, point: DownsamplePoint) -> Downsample:
    """Pixel-adaptive smoothing, then subsampling (Zou, Xiao, Yu & Lee, BMVC 2020)."""
    c, joint = point.channels, cfg.softmax == PASASoftmax.joint
    groups = math.gcd(cfg.groups, c)
    if point.stands_for == Stands.conv:  # the reference's strided convs: PASA, conv at stride 1
        return added(PixelAdaptiveSmoothing(c, cfg.kernel_size, groups, point.ceil_mode(), joint))
    # the reference's max pool: kernel 2 at stride 1, then PASA (an odd side rounding up first
    # repeats its last row/column, as MaxBlurPool here)
    edge = [EvenSize(ceil_mode=True, mode="replicate")] if point.ceil_mode() else []
    smoothing = PixelAdaptiveSmoothing(c, cfg.kernel_size, groups, joint_softmax=joint)
    return added(*edge, nn.MaxPool2d(2, stride=1), smoothing)
