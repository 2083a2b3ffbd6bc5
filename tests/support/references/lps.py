"""Learnable polyphase sampling as its authors wrote it, for the tests to compare with.

Ported from github.com/raymondyeh07/learnable_polyphase_sampling (licence not stated in the
repository), ``learn_poly_sampling/layers/``: ``polydown.py`` (``split_polyV2``, ``LPS``,
``PolyphaseInvariantDown2D``), ``lps_logit_layers.py`` (``LPSLogitLayersV2``) and
``lps_utils.py`` (``lps_downsampleV2``). Kept: the LPS selection with its logits network,
Gumbel-softmax in training, the argmax in evaluation, and the shortcut's ``prob`` hand-over
(``resnet_custom.py``'s ``BasicBlockCustom``). Dropped: the anti-aliasing layers, the other
selections (max_p_norm, fixed), the convex and test-time Gumbel modes and the temperature
buffer's scheduler (the temperature is a plain float here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LPSLogitLayersV2(nn.Module):
    def __init__(self, in_channels, hid_channels, padding_mode, skip_connect=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hid_channels, 3, padding="same",
                               padding_mode=padding_mode)
        self.conv2 = nn.Conv2d(hid_channels, hid_channels, 3, padding="same",
                               padding_mode=padding_mode)
        self.relu = nn.ReLU()
        self.skip_connect = skip_connect

    def forward(self, x):
        batch_size = x[0].shape[0]
        xpoly_combined = torch.flatten(x, start_dim=0, end_dim=1)  # [BP x C x H x W]
        ret = self.conv2(self.relu(self.conv1(xpoly_combined)))
        if self.skip_connect:
            ret += xpoly_combined
        ret = ret.mean(dim=(-1, -2, -3))
        return torch.stack(torch.split(ret, batch_size), -1)


def lps_downsampleV2(x, stride, polyphase_logits, mode="train", tau=1.0, hard=False,
                     prob=None):
    assert stride == 2
    assert mode in ["train", "test"]
    xpoly_combined = x.permute(1, 2, 3, 4, 0)
    batch_size, phase_size = x[0].shape[0], len(x)
    if mode == "train":
        if polyphase_logits is None:
            _sampled_prob = prob  # the body's draw, handed to the shortcut
        else:
            _sampled_prob = F.gumbel_softmax(polyphase_logits, tau=tau, hard=hard)
        sampled_prob = _sampled_prob.view(batch_size, 1, 1, 1, phase_size)
        ret = torch.sum(xpoly_combined * sampled_prob, -1)
        return ret, (_sampled_prob, polyphase_logits)
    if polyphase_logits is None:
        polyphase_logits = prob  # the body's logits
    _, sampled_idx = torch.max(polyphase_logits, -1)
    ret = xpoly_combined[torch.arange(batch_size), :, :, :, sampled_idx]
    return ret, polyphase_logits


class LPS(nn.Module):
    def __init__(self, in_channels, hid_channels, stride, logits_pad,
                 get_logits=LPSLogitLayersV2, downsample=lps_downsampleV2, tau=1.0):
        super().__init__()
        if get_logits is not None:
            self.get_logits = get_logits(in_channels=in_channels, hid_channels=hid_channels,
                                         padding_mode=logits_pad)
        self.downsample = downsample
        self.stride = stride
        self.gumbel_tau = tau

    def forward(self, x, mode="train", prob=None):
        logits = self.get_logits(x) if prob is None else None
        return self.downsample(x=x, polyphase_logits=logits, stride=self.stride,
                               tau=self.gumbel_tau, mode=mode, prob=prob)


def split_polyV2(x, stride, in_channels, num_components):
    _, _, h, w = x.shape
    x = nn.functional.pad(x, (0, w % stride, 0, h % stride))
    _x = nn.functional.pixel_unshuffle(x, stride)
    bb, _, hh, ww = _x.shape
    return _x.view(bb, in_channels, num_components, hh, ww).permute(2, 0, 1, 3, 4)


class PolyphaseInvariantDown2D(nn.Module):
    """With ``use_get_logits=False``: a shortcut's layer, which takes the body's ``prob``."""

    def __init__(self, stride=2, in_channels=None, hid_channels=None, use_get_logits=True,
                 logits_pad="circular", tau=1.0):
        super().__init__()
        self.stride = stride
        self.num_components = stride ** 2
        self.component_selection = LPS(
            in_channels=in_channels, hid_channels=hid_channels, stride=stride,
            logits_pad=logits_pad, get_logits=LPSLogitLayersV2 if use_get_logits else None,
            tau=tau)

    def forward(self, x, ret_prob=False, prob=None):
        components = split_polyV2(x=x, stride=self.stride, in_channels=x.shape[1],
                                  num_components=self.num_components)
        mode = "train" if self.training else "test"
        _x, _p = self.component_selection(x=components, mode=mode, prob=prob)
        return (_x, _p) if ret_prob else _x
