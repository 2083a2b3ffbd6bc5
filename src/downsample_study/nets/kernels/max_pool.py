"""A pack's 2×2, stride-2 max pool on CPU: torch's values and gradients bit for bit, faster.

torch's CPU pool writes int64 indices, zero-fills the gradient before scattering into it and
takes the channels past the last multiple of 16 one by one: a sixth of a LeNet pack's step, and
neither oneDNN's pool nor torch.compile's was faster (benchmarks/RESULTS.md)."""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from downsample_study.nets.kernels.library import library, takes
from downsample_study.nets.shapes import pair, stride_of


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, relu: bool) -> torch.Tensor:
        n, c, h, w = x.shape
        y = torch.empty((n, c, h // 2, w // 2), memory_format=torch.channels_last)
        places = torch.empty((n, h // 2, w // 2, c), dtype=torch.int8)
        library().max_pool_forward(x.data_ptr(), y.data_ptr(), places.data_ptr(), n, h, w, c,
                                   int(relu), torch.get_num_threads())
        ctx.save_for_backward(places)
        ctx.input_shape = x.shape
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (places,) = ctx.saved_tensors
        n, c, h, w = ctx.input_shape
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = torch.empty(ctx.input_shape, memory_format=torch.channels_last)
        library().max_pool_backward(grad.data_ptr(), places.data_ptr(), grad_x.data_ptr(),
                                    n, h, w, c, torch.get_num_threads())
        return grad_x, None


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)``, then ``nn.ReLU`` where ``relu``; run by the kernel where it pays: a
    float32 channels-last CPU map of even height and width (where ceil mode changes nothing),
    outside ``torch.compile``."""

    def __init__(self, ceil_mode: bool = False, relu: bool = False):
        super().__init__(2, 2, ceil_mode=ceil_mode)
        self.relu = relu

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, relu={self.relu}"

    @staticmethod
    def replaces(pool: nn.MaxPool2d) -> bool:
        return (pair(pool.kernel_size) == stride_of(pool) == (2, 2)
                and pair(pool.padding) == (0, 0) and pair(pool.dilation) == (1, 1)
                and not pool.return_indices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if takes(x) and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0:
            return _MaxPool2x2.apply(x, self.relu)
        pooled = super().forward(x)
        return torch.relu(pooled) if self.relu else pooled
