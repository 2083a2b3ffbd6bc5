"""LIP's pooling and its simplified logit module, ported from sebgao/LIP,
``imagenet/lip_resnet.py`` (``lip2d``, ``SoftGate``, ``SimplifiedLIP``; MIT licence,
Copyright (c) 2019 Ziteng Gao).

``SimplifiedLIP`` is what LIP-ResNet puts in place of ResNet's max pool (``self.maxpool =
SimplifiedLIP(64)``). Changed: ``init_layer`` (LIP-ResNet's zero fill of the conv) dropped:
the tests copy weights in; the module-level ``COEFF`` is a constant here.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

COEFF = 12.0


def lip2d(x, logit, kernel=3, stride=2, padding=1):
    weight = logit.exp()
    return (F.avg_pool2d(x * weight, kernel, stride, padding)
            / F.avg_pool2d(weight, kernel, stride, padding))


class SoftGate(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x).mul(COEFF)


class SimplifiedLIP(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.logit = nn.Sequential(OrderedDict((
            ("conv", nn.Conv2d(channels, channels, 3, padding=1, bias=False)),
            ("bn", nn.InstanceNorm2d(channels, affine=True)),
            ("gate", SoftGate()),
        )))

    def forward(self, x):
        return lip2d(x, self.logit(x))
