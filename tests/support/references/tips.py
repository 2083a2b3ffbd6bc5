"""Translation-invariant polyphase sampling as its authors wrote it, for the tests to compare
with.

Ported from github.com/sourajitcs/tips (MIT, © 2023 Sourajit Saha): ``tips.py``
(``feat_transform``, ``TIPS``), ``util.py`` (``Index_Regularize``) and ``train_test.py``
(``train_module``'s objective, here ``objective``). Changed: the random shift is drawn from
torch's global generator instead of numpy's (so a test can seed both sides alike); ``forward``
returns the phase weights ``tau`` as a fourth output where ``return_soft_polyphase_indices`` is
set (the published one returns three values either way, though ``resnet.py`` unpacks four);
the sanity-check prints are dropped. ``x_t.detach()``, whose result the reference discards,
is kept as it is: its shifted map is not detached.
"""

from __future__ import annotations

import math

import torch
from torch import linalg as LA
from torch import nn


def get_pad_layer(pad_type):
    if pad_type in ["refl", "reflect"]:
        return nn.ReflectionPad2d
    if pad_type in ["repl", "replicate"]:
        return nn.ReplicationPad2d
    if pad_type == "zero":
        return nn.ZeroPad2d
    raise ValueError(f"Pad type [{pad_type}] not recognized")


def _randint(low, high):
    """numpy's ``np.random.randint(low, high)``, drawn from torch's global generator."""
    return int(torch.randint(low, high, ()))


class feat_transform(nn.Module):
    def __init__(self, max_shift_h=2, max_shift_w=2, transform_type="standard",
                 shift_direction_is_rand=True, shift_amount_is_rand=True):
        super().__init__()
        self.max_shift_h = max_shift_h
        self.max_shift_w = max_shift_w
        self.transform_type = transform_type
        self.shift_direction_is_rand = shift_direction_is_rand
        self.shift_amount_is_rand = shift_amount_is_rand

    def forward(self, feat):
        shift_h = _randint(-self.max_shift_h, self.max_shift_h + 1)
        shift_w = _randint(-self.max_shift_w, self.max_shift_w + 1)
        if self.shift_direction_is_rand and not self.shift_amount_is_rand:
            shift_h = int(math.copysign(shift_h, self.max_shift_h))
            shift_w = int(math.copysign(shift_w, self.max_shift_w))
        elif not self.shift_direction_is_rand and self.shift_amount_is_rand:
            shift_h = int(math.copysign(self.max_shift_h, shift_h))
            shift_w = int(math.copysign(self.max_shift_w, shift_w))
        elif not self.shift_direction_is_rand and not self.shift_amount_is_rand:
            shift_h = self.max_shift_h
            shift_w = self.max_shift_w

        if self.transform_type == "standard":
            shifted_feat = torch.roll(feat, shifts=shift_h, dims=-2)
            if shift_h > 0:
                shifted_feat[:, :, :shift_h, :] = 0
            elif shift_h < 0:
                shifted_feat[:, :, shift_h:, :] = 0
            shifted_feat = torch.roll(shifted_feat, shifts=shift_w, dims=-1)
            if shift_w > 0:
                shifted_feat[:, :, :, :shift_w] = 0
            elif shift_w < 0:
                shifted_feat[:, :, :, shift_w:] = 0
            return shifted_feat
        if self.transform_type == "circular":
            return torch.roll(feat, shifts=(shift_h, shift_w), dims=(-2, -1))
        raise ValueError(f"Unknown transform type: {self.transform_type}")


class TIPS(nn.Module):
    def __init__(self, in_channels, num_poly=4, pad_type="reflect", kernel=3, stride=2,
                 max_shift_h=2, max_shift_w=2, transform_type="standard",
                 return_soft_polyphase_indices=False):
        super().__init__()
        self.pad_ee = get_pad_layer(pad_type)([0, 0, 0, 0])
        self.pad_eo = get_pad_layer(pad_type)([1, 0, 0, 0])
        self.pad_oe = get_pad_layer(pad_type)([0, 0, 1, 0])
        self.pad_oo = get_pad_layer(pad_type)([1, 0, 1, 0])
        self.in_channels = in_channels
        self.kernel = kernel
        self.stride = stride
        self.num_poly = num_poly
        if self.num_poly is None or self.num_poly == 0:
            self.num_poly = self.stride * self.stride
        self.return_soft_polyphase_indices = return_soft_polyphase_indices
        self.trans = feat_transform(max_shift_h=max_shift_h, max_shift_w=max_shift_w,
                                    transform_type=transform_type)
        self.conv1 = nn.Conv2d(self.in_channels, self.in_channels, kernel_size=self.kernel,
                               groups=self.in_channels, padding=int((self.kernel - 1) / 2.),
                               stride=1, bias=False)
        self.relu1 = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((self.stride, self.stride))
        self.conv2 = nn.Conv2d(self.in_channels, self.in_channels, kernel_size=1,
                               groups=self.in_channels, stride=1, bias=False)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        N, C, H, W = x.shape
        if H % 2 == 0 and W % 2 == 0:
            x = self.pad_ee(x)
        elif H % 2 == 0 and W % 2 != 0:
            x = self.pad_eo(x)
        elif H % 2 != 0 and W % 2 == 0:
            x = self.pad_oe(x)
        elif H % 2 != 0 and W % 2 != 0:
            x = self.pad_oo(x)
        N, C, H, W = x.shape

        x_t = self.trans(x)
        x_t.detach()  # the reference discards the result

        x_w = self.conv1(x)
        psi_x = self.relu1(x_w)
        x_w = self.avgpool(psi_x)
        x_w = self.conv2(x_w)
        tau = x_w.view(N, C, -1)
        tau = self.softmax(tau)

        xpoly_0 = x[:, :, 0::self.stride, 0::self.stride]
        xpoly_1 = x[:, :, 1::self.stride, 0::self.stride]
        xpoly_2 = x[:, :, 0::self.stride, 1::self.stride]
        xpoly_3 = x[:, :, 1::self.stride, 1::self.stride]
        xpoly_stacks = torch.stack([xpoly_0, xpoly_1, xpoly_2, xpoly_3], dim=2)
        xpoly_stacks = xpoly_stacks.view(N, C, self.num_poly,
                                         H // self.stride * W // self.stride)
        soft_polyphase = (tau.reshape(N, C, self.num_poly, 1) * xpoly_stacks).view(
            N, C, self.num_poly, H // self.stride, W // self.stride)
        soft_polyphase = torch.sum(soft_polyphase, dim=2)
        if self.return_soft_polyphase_indices:
            return soft_polyphase, psi_x, x_t, tau
        return soft_polyphase, psi_x, x_t


class Index_Regularize(nn.Module):
    def __init__(self, ignore_label=-1, weight=None):
        super().__init__()
        self.ignore_label = ignore_label

    def forward(self, Tau):
        return torch.mean(1 - LA.vector_norm(Tau, dim=(-1), ord=2))


def objective(output, labels, psi_x, x_t, tau, alpha=0.35, epoch=None, wake_up_at=0):
    """``train_module``'s loss: ``psi_x``, ``x_t``: one entry per downsampling stage,
    ``tau``: the stages' phase weights concatenated along the channels."""
    num_down = len(psi_x)
    aux_weights = [1 / float(num_down)] * int(num_down)
    loss_reg = Index_Regularize()(tau)
    loss_cls = torch.nn.CrossEntropyLoss()(output, labels)
    if epoch is not None and epoch < wake_up_at:
        aux_weights = [0.0 for _ in aux_weights]
    loss_aux = [aux_weights[i] * torch.nn.MSELoss()(psi_x[i], x_t[i]) for i in range(num_down)]
    return loss_reg + (1 - alpha) * loss_cls + alpha * torch.sum(torch.stack(loss_aux))

