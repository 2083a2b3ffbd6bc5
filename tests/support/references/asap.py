"""Grabinski et al.'s ASAP_padding_one (aliasing and sinc-artefact-free pooling, 2023), ported
for tests.

Source: github.com/GeJulia/flc_pooling, asap.py at its newest commit (983b2b5, non-square
inputs), MIT licence (LICENSE.md, Copyright (c) 2022 Grabinski); resnet_asap.py uses this
variant by default. Changed: the window is built on every call in the input's dtype and device
(the original caches a float32 CUDA tensor at the first call).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class ASAP_padding_one(nn.Module):
    # pooling trough selecting only the low frequent part in the fourier domain and only using
    # this part to go back into the spatial domain
    # using a hamming window to prevent sinc-interpolation artifacts
    def __init__(self):
        super().__init__()

    def forward(self, x):

        x = F.pad(x, (0, 1, 0, 1), "constant", 0)
        window1d = np.abs(np.hamming(x.size(2)))
        window2nd = np.abs(np.hamming(x.size(3)))
        window2d = np.sqrt(np.outer(window1d, window2nd))
        window2d = torch.as_tensor(window2d, dtype=x.dtype, device=x.device)

        low_part = torch.fft.fftshift(torch.fft.fft2(x, norm='forward'))
        low_part = low_part * window2d.unsqueeze(0).unsqueeze(0)
        low_part = low_part[:, :, int(x.size(2) / 4):int(x.size(2) / 4 * 3),
                            int(x.size(3) / 4):int(x.size(3) / 4 * 3)]

        fc = torch.fft.ifft2(torch.fft.ifftshift(low_part), norm='forward').real
        return fc
