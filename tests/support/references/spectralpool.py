"""Spectral pooling (Rippel, Snoek & Adams, NeurIPS 2015, Algorithm 1), written from the paper
for tests: it has no official code.

Each step as the paper names it, with explicit frequency indices (no ``fftshift``):
CropSpectrum keeps the h x w lowest frequencies, TreatCornerCases makes real the bins that are
their own conjugates (DC and, on an even side, the Nyquist bin), and the inverse DFT's real part
is the output. The paper leaves the DFT's scaling open: the output is scaled by
(h·w)/(H·W), so that the pooled map keeps the input's mean (a constant map stays constant).
"""

from __future__ import annotations

import torch


def frequencies(size: int) -> list[int]:
    """The signed frequency of each bin of a ``size``-point DFT, in torch's bin order: the
    non-negative ones up to ceil(size/2) - 1, then the negative ones (an even side's Nyquist
    bin counts as -size/2)."""
    return [k if k < size - size // 2 else k - size for k in range(size)]


def crop_spectrum(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The bins of the h x w lowest frequencies of ``y`` (..., H, W), in an h x w DFT's order."""
    big_h, big_w = y.shape[-2:]
    rows = torch.tensor([k % big_h for k in frequencies(h)])
    cols = torch.tensor([k % big_w for k in frequencies(w)])
    return y[..., rows, :][..., cols]


def treat_corner_cases(y: torch.Tensor) -> torch.Tensor:
    """The bins equal to their own conjugates, (0 or h/2, 0 or w/2) where a side is even,
    made real."""
    h, w = y.shape[-2:]
    y = y.clone()
    for m in {0, h // 2} if h % 2 == 0 else {0}:
        for n in {0, w // 2} if w % 2 == 0 else {0}:
            y[..., m, n] = y[..., m, n].real
    return y


def spectral_pool(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Algorithm 1: x (..., H, W) pooled to (..., h, w)."""
    big_h, big_w = x.shape[-2:]
    y = torch.fft.fft2(x)
    y_hat = treat_corner_cases(crop_spectrum(y, h, w))
    return torch.fft.ifft2(y_hat).real * (h * w) / (big_h * big_w)
