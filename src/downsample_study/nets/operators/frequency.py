"""Frequency-domain pooling: the spectrum cropped to the frequencies the halved map holds.

Nothing aliases: the frequencies the smaller map cannot hold are dropped, the rest keep their
amplitude (ASAP first tapers them with a Hamming window, against sinc ringing).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from downsample_study.nets.later_downsample_configs import (
    ASAPConfig,
    FLCPoolConfig,
    SpectralPoolConfig,
)
from downsample_study.nets.operators.core import added, register_downsample
from downsample_study.nets.points import Downsample, DownsamplePoint

SPATIAL = (-2, -1)


def root_hamming(size: int, like: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric Hamming window (numpy's ``hamming``), in ``like``'s dtype;
    the outer product of two is ASAP's window."""
    window = torch.hamming_window(size, periodic=False, dtype=like.dtype, device=like.device)
    return window.sqrt()


class SpectralCrop(nn.Module):
    """The real part of the inverse DFT of the centred ceil(n/2) (``ceil_mode``) or floor(n/2)
    lowest frequencies of each side n of a map's DFT, at the input's amplitude.

    An even output side keeps its Nyquist bin from the negative side, as ``fftshift`` orders
    bins; taking the real part treats it as a real bin. ``hamming`` (ASAP): an even side is first
    padded by one zero (bottom, right) so its spectrum has a centre bin, DC, and the spectrum is
    weighted by the square root of a Hamming window over each side before it is cropped.
    """

    def __init__(self, ceil_mode: bool = False, hamming: bool = False):
        super().__init__()
        self.ceil_mode = ceil_mode
        self.hamming = hamming

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = [-(-n // 2) if self.ceil_mode else n // 2 for n in x.shape[-2:]]
        if self.hamming:
            x = F.pad(x, (0, 1 - x.shape[-1] % 2, 0, 1 - x.shape[-2] % 2))
        spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="forward"), dim=SPATIAL)
        height, width = x.shape[-2:]
        if self.hamming:
            spectrum = spectrum * root_hamming(height, x)[:, None] * root_hamming(width, x)
        top, left = height // 2 - kept[0] // 2, width // 2 - kept[1] // 2  # DC sits at n // 2
        low = spectrum[..., top:top + kept[0], left:left + kept[1]]
        return torch.fft.ifft2(torch.fft.ifftshift(low, dim=SPATIAL), norm="forward").real

    def extra_repr(self) -> str:
        return f"ceil_mode={self.ceil_mode}, hamming={self.hamming}"


@register_downsample("flcpool")
def flcpool(cfg: FLCPoolConfig, point: DownsamplePoint) -> Downsample:
    """Frequency low-cut pooling (Grabinski, Jung, Keuper & Keuper, ECCV 2022)."""
    return added(SpectralCrop(point.ceil_mode()))


@register_downsample("asap")
def asap(cfg: ASAPConfig, point: DownsamplePoint) -> Downsample:
    """Aliasing and sinc-artefact-free pooling, ASAP (Grabinski, Keuper & Keuper, 2023)."""
    return added(SpectralCrop(point.ceil_mode(), hamming=True))


@register_downsample("spectralpool")
def spectralpool(cfg: SpectralPoolConfig, point: DownsamplePoint) -> Downsample:
    """Spectral pooling (Rippel, Snoek & Adams, NeurIPS 2015)."""
    # the paper's TreatCornerCases (the self-conjugate bins made real) is what taking the real
    # part does, so at a halving point this is FLC pooling's layer
    return added(SpectralCrop(point.ceil_mode()))
