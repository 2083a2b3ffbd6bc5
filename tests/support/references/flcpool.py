"""Grabinski et al.'s FLC_Pooling (frequency low-cut pooling, ECCV 2022), ported for tests.

Source: github.com/GeJulia/flc_pooling, flc_pooling.py at its newest commit (983b2b5; the FFTs'
``norm='forward'`` since 56e16ea, before which it returned ``abs`` of an unnormalised inverse),
MIT licence (LICENSE.md, Copyright (c) 2022 Grabinski). Unchanged but for Python 3 style.
"""

import torch
import torch.nn as nn


class FLC_Pooling(nn.Module):
    # pooling trough selecting only the low frequent part in the fourier domain and only using
    # this part to go back into the spatial domain
    def __init__(self):
        super().__init__()

    def forward(self, x):
        low_part = torch.fft.fftshift(torch.fft.fft2(x, norm='forward'))[
            :, :, int(x.size(2) / 4):int(x.size(2) / 4 * 3),
            int(x.size(3) / 4):int(x.size(3) / 4 * 3)]

        return torch.fft.ifft2(torch.fft.ifftshift(low_part), norm='forward').real
