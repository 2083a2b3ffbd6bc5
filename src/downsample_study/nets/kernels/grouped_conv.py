"""A pack's grouped conv of at most 16 input and 16 output channels a group, on CPU: the
input gradient by the kernel, the rest by torch.

oneDNN computes that gradient at under half of this machine's peak; its forward and weight
gradients run near it and are kept (benchmarks/RESULTS.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from downsample_study.nets.kernels.library import library, plain_conv, takes
from downsample_study.nets.shapes import pair

MOST_CHANNELS = 16  # a group's output channels in one vector, its input channels' sums in one


class _GroupedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: tuple[int, int], groups: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups, ctx.has_bias = padding, groups, bias is not None
        return F.conv2d(x, weight, bias, padding=padding, groups=groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad, weight, x.shape, ctx.padding, ctx.groups)
        wanted = [False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        if any(wanted):  # one call: oneDNN shares its work between the two
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1],
                list(ctx.padding), [1, 1], False, [0, 0], ctx.groups, wanted)
        return grad_x, grad_weight, grad_bias, None, None


def _input_grad(grad: torch.Tensor, weight: torch.Tensor, shape: torch.Size,
                padding: tuple[int, int], groups: int) -> torch.Tensor:
    n, _, h, w = shape
    out_channels, per_group, kh, kw = weight.shape
    per_output = out_channels // groups
    taps = torch.zeros(groups, kh, kw, per_group, MOST_CHANNELS)
    taps[..., :per_output] = weight.reshape(groups, per_output, per_group, kh, kw).permute(
        0, 3, 4, 2, 1)
    grad_x = torch.empty(shape, memory_format=torch.channels_last)
    library().grouped_conv_input_grad(
        grad.data_ptr(), taps.data_ptr(), grad_x.data_ptr(), n, groups, per_group, per_output,
        h, w, kh, kw, *padding, torch.get_num_threads())
    return grad_x


class GroupedConv(nn.Conv2d):
    """A grouped ``nn.Conv2d`` whose input gradient the kernel computes where it can: a float32
    channels-last CPU map that needs its gradient, outside ``torch.compile``."""

    @staticmethod
    def replaces(conv: nn.Conv2d, members: int) -> bool:
        """Whether the pack of ``members`` copies of ``conv`` is one this class runs."""
        return (members > 1 and conv.in_channels // conv.groups <= MOST_CHANNELS
                and conv.out_channels // conv.groups <= MOST_CHANNELS and plain_conv(conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and self.weight.dtype == torch.float32 and takes(x):
            return _GroupedConv.apply(x, self.weight, self.bias, pair(self.padding), self.groups)
        return super().forward(x)
