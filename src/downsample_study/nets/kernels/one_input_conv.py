"""A pack's first conv on one-channel images, each group reading one input channel, on CPU.

oneDNN runs it at a fifth of this machine's peak and ~2× the kernel's time, forward and
backward (benchmarks/RESULTS.md): the kernel spreads each image over the output channels once,
then every tap is a multiply-add of 16 channels."""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from downsample_study.nets.kernels.library import library, plain_conv, takes
from downsample_study.nets.shapes import pair

# the C code's limits: one 16-float load holds a pixel's input channels; 7 taps a row
MOST_INPUT_CHANNELS, WIDEST_KERNEL = 16, 7


def _lanes(channels: int) -> int:
    return -(-channels // 16) * 16


class _OneInputConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: tuple[int, int]) -> torch.Tensor:
        n, members, h, w = x.shape
        channels, _, kh, kw = weight.shape
        oh, ow = h + 2 * padding[0] - kh + 1, w + 2 * padding[1] - kw + 1
        taps = torch.zeros(kh * kw, _lanes(channels))
        taps[:, :channels] = weight.detach().reshape(channels, kh * kw).T
        shift = torch.zeros(_lanes(channels))
        if bias is not None:
            shift[:channels] = bias.detach()
        y = torch.empty((n, channels, oh, ow), memory_format=torch.channels_last)
        library().one_input_conv_forward(
            x.data_ptr(), taps.data_ptr(), shift.data_ptr(), y.data_ptr(), n, members,
            channels // members, h, w, kh, kw, *padding, torch.get_num_threads())
        ctx.save_for_backward(x)
        ctx.geometry = (weight.shape, padding, bias is not None)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        (channels, _, kh, kw), padding, has_bias = ctx.geometry
        n, members, h, w = x.shape
        grad = grad.contiguous(memory_format=torch.channels_last)
        threads = torch.get_num_threads()
        parts = torch.empty(threads, kh * kw + 1, _lanes(channels))
        library().one_input_conv_backward(
            x.data_ptr(), grad.data_ptr(), parts.data_ptr(), n, members, channels // members,
            h, w, kh, kw, *padding, threads)
        sums = parts.sum(0)
        grad_weight = sums[:-1, :channels].T.reshape(channels, 1, kh, kw)
        return None, grad_weight, sums[-1, :channels] if has_bias else None, None


class OneInputConv(nn.Conv2d):
    """A grouped ``nn.Conv2d`` whose groups each read one input channel, run by the kernel where
    it can: a float32 channels-last CPU map that needs no gradient (a network's input), outside
    ``torch.compile``. Elsewhere, and for input gradients, torch's conv runs."""

    @staticmethod
    def replaces(conv: nn.Conv2d, members: int) -> bool:
        """Whether the pack of ``members`` copies of ``conv`` is one this class runs."""
        return (conv.in_channels == conv.groups
                and conv.in_channels * members <= MOST_INPUT_CHANNELS
                and max(pair(conv.kernel_size)) <= WIDEST_KERNEL and plain_conv(conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not x.requires_grad and self.weight.dtype == torch.float32 and takes(x)
                and x.shape[2] + 2 * self.padding[0] >= self.kernel_size[0]
                and x.shape[3] + 2 * self.padding[1] >= self.kernel_size[1]):
            return _OneInputConv.apply(x, self.weight, self.bias, pair(self.padding))
        return super().forward(x)
