"""Zou et al.'s Downsample_PASA_group_softmax (pixel-adaptive smoothing), ported for tests.

Source: github.com/MaureenZOU/Adaptive-anti-Aliasing, models_lpf/layers/pasa.py, as
models_lpf/resnet_pasa_group_softmax.py builds it (stride 2); the repository has no licence
file, its model files carry Adobe's CC BY-NC-SA 4.0 header (test use only). Changed: only the
reflection padding its default ``pad_type`` picks (``get_pad_layer`` and ``cv2`` dropped).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Downsample_PASA_group_softmax(nn.Module):

    def __init__(self, in_channels, kernel_size, stride=1, pad_type='reflect', group=2):
        super().__init__()
        assert pad_type == 'reflect'
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.stride = stride
        self.kernel_size = kernel_size
        self.group = group

        self.conv = nn.Conv2d(in_channels, group * kernel_size * kernel_size,
                              kernel_size=kernel_size, stride=1, bias=False)
        self.bn = nn.BatchNorm2d(group * kernel_size * kernel_size)
        self.softmax = nn.Softmax(dim=1)
        nn.init.kaiming_normal_(self.conv.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x):
        sigma = self.conv(self.pad(x))
        sigma = self.bn(sigma)
        sigma = self.softmax(sigma)

        n, c, h, w = sigma.shape

        sigma = sigma.reshape(n, 1, c, h * w)

        n, c, h, w = x.shape
        x = F.unfold(self.pad(x), kernel_size=self.kernel_size).reshape(
            (n, c, self.kernel_size * self.kernel_size, h * w))

        n, c1, p, q = x.shape
        x = x.permute(1, 0, 2, 3).reshape(self.group, c1 // self.group, n, p, q).permute(
            2, 0, 1, 3, 4)

        n, c2, p, q = sigma.shape
        sigma = sigma.permute(2, 0, 1, 3).reshape(
            (p // (self.kernel_size * self.kernel_size), self.kernel_size * self.kernel_size,
             n, c2, q)).permute(2, 0, 3, 1, 4)

        x = torch.sum(x * sigma, dim=3).reshape(n, c1, h, w)
        return x[:, :, torch.arange(h) % self.stride == 0, :][
            :, :, :, torch.arange(w) % self.stride == 0]
