"""The packs' conv kernels: torch's grouped conv's values and gradients (to float32 rounding)
where a kernel runs, torch's conv elsewhere. ``OneInputConv``: the first conv on one-channel
images; ``GroupedConv``: the input gradients of convs of up to 16 channels a group."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from support import needs_kernels
from torch import nn

from downsample_study.nets.kernels.grouped_conv import GroupedConv
from downsample_study.nets.kernels.one_input_conv import OneInputConv
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config
from downsample_study.nets.packed import PackedNet


def _conv(members: int, per: int, kernel, padding, bias: bool = True) -> OneInputConv:
    conv = OneInputConv(members, members * per, kernel, padding=padding, groups=members,
                        bias=bias)
    return conv.to(memory_format=torch.channels_last)


def _input(shape) -> torch.Tensor:
    return torch.randn(shape).contiguous(memory_format=torch.channels_last)


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal but for the order of float32 sums: within a few units of the largest term."""
    return torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("members", "per", "kernel", "padding", "size"), [
    (8, 6, 5, 2, (28, 28)),          # LeNet-5's, a pack of 8
    (5, 6, 5, 2, (28, 28)),          # 30 channels: the last 16 partly empty
    (1, 1, 3, 1, (5, 4)),            # one member, one channel
    (16, 7, 3, 0, (9, 11)),          # the most members, 112 channels, no padding
    (3, 4, (3, 5), (0, 2), (7, 6)),  # a kernel and padding of two sizes
    (2, 3, 7, 3, (10, 3)),           # the widest kernel, wider than the image
    (4, 2, 1, 0, (6, 6)),            # a 1×1 kernel
])
@pytest.mark.parametrize("bias", [True, False])
def test_the_kernel_gives_torchs_conv_and_its_weight_gradients(
        members, per, kernel, padding, size, bias, threads, torch_threads):
    conv = _conv(members, per, kernel, padding, bias)
    x = _input((3, members, *size))
    torch_threads(threads)
    y = conv(x)
    assert type(y.grad_fn).__name__ == "_OneInputConvBackward"  # the kernel ran
    assert y.is_contiguous(memory_format=torch.channels_last)
    grad = _input(y.shape)
    got = torch.autograd.grad(y, list(conv.parameters()), grad)
    torch_threads(1)
    want_y = F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, groups=members)
    want = torch.autograd.grad(want_y, list(conv.parameters()), grad)
    assert _close(y, want_y)
    assert all(_close(g, w) for g, w in zip(got, want, strict=True))


@needs_kernels
@pytest.mark.parametrize("case", ["input needs its gradient", "NCHW", "float64", "empty batch"])
def test_what_the_kernel_does_not_cover_runs_torchs_conv(case):
    conv = _conv(4, 3, 3, 1).double() if case == "float64" else _conv(4, 3, 3, 1)
    x = _input((0 if case == "empty batch" else 2, 4, 6, 6)).to(conv.weight.dtype)
    if case == "NCHW":
        x = x.contiguous()
    x.requires_grad_(case == "input needs its gradient")
    y = conv(x)
    assert torch.equal(y, F.conv2d(x, conv.weight, conv.bias, padding=1, groups=4))
    assert type(y.grad_fn).__name__ == "ConvolutionBackward0"
    if case == "input needs its gradient":  # an attack's, through a pack
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert grad.shape == x.shape and grad.abs().sum() > 0


@needs_kernels
@pytest.mark.parametrize("kind", [OneInputConv, GroupedConv])
def test_a_second_derivative_through_a_conv_kernel_is_refused(kind):
    conv = kind(2, 6, 3, padding=1, groups=2).to(memory_format=torch.channels_last)
    x = _input((2, 2, 5, 5)).requires_grad_(kind is GroupedConv)
    (grad,) = torch.autograd.grad(conv(x).pow(2).sum(), conv.weight, create_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        grad.sum().backward()


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("members", "per_input", "per_output", "kernel", "padding", "size"), [
    (8, 6, 16, 5, 0, (14, 14)),        # LeNet-5's second conv, a pack of 8
    (4, 16, 16, 3, 1, (10, 10)),       # lenet5_nopool's third: 16 sums at once
    (3, 6, 10, 3, 1, (7, 9)),          # 10 output channels a group: lanes left empty
    (2, 5, 16, (3, 5), (1, 2), (6, 8)),  # 5 input channels: the loops for any count
    (2, 1, 4, 3, 0, (5, 5)),           # one input channel a group
    (2, 3, 8, 7, 3, (4, 3)),           # a kernel wider than the image
])
@pytest.mark.parametrize("bias", [True, False])
def test_the_input_gradient_kernel_gives_torchs_gradients(
        members, per_input, per_output, kernel, padding, size, bias, threads, torch_threads):
    conv = GroupedConv(members * per_input, members * per_output, kernel, padding=padding,
                       groups=members, bias=bias).to(memory_format=torch.channels_last)
    x = _input((3, members * per_input, *size)).requires_grad_()
    torch_threads(threads)
    y = conv(x)
    assert type(y.grad_fn).__name__ == "_GroupedConvBackward"  # the kernel ran
    grad = _input(y.shape)
    got = torch.autograd.grad(y, [x, *conv.parameters()], grad)
    torch_threads(1)
    want_y = F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, groups=members)
    want = torch.autograd.grad(want_y, [x, *conv.parameters()], grad)
    assert torch.equal(y, want_y)  # torch's own forward
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert all(_close(g, w) for g, w in zip(got, want, strict=True))


@needs_kernels
@pytest.mark.parametrize("case", ["input needs no gradient", "NCHW", "float64"])
def test_what_the_input_gradient_kernel_does_not_cover_runs_torchs_conv(case):
    conv = GroupedConv(4, 8, 3, padding=1, groups=2).to(memory_format=torch.channels_last)
    conv = conv.double() if case == "float64" else conv
    x = _input((2, 4, 6, 6)).to(conv.weight.dtype)
    x = x.contiguous() if case == "NCHW" else x
    x.requires_grad_(case != "input needs no gradient")
    y = conv(x)
    assert type(y.grad_fn).__name__ == "ConvolutionBackward0"
    assert torch.equal(y, F.conv2d(x, conv.weight, conv.bias, padding=1, groups=2))


@pytest.mark.parametrize(("solo", "members", "kernel"), [
    (nn.Conv2d(1, 6, 5, padding=2), 8, True),
    (nn.Conv2d(1, 6, 5, padding=2, bias=False), 16, True),
    (nn.Conv2d(2, 2, 3, groups=2), 8, True),      # depthwise: 16 input channels in all
    (nn.Conv2d(1, 6, 5), 17, False),              # too many input channels for one load
    (nn.Conv2d(3, 6, 3), 2, False),               # three channels a group
    (nn.Conv2d(1, 6, 3, stride=2), 2, False),
    (nn.Conv2d(1, 6, 3, dilation=2), 2, False),
    (nn.Conv2d(1, 6, 3, padding="same"), 2, False),
    (nn.Conv2d(1, 6, 3, padding=1, padding_mode="reflect"), 2, False),
    (nn.Conv2d(1, 6, 9), 2, False),               # wider than 7
])
def test_a_pack_runs_the_kernel_for_convs_whose_groups_read_one_channel(solo, members, kernel):
    packed = PackedNet([nn.Sequential(solo) for _ in range(members)],
                       [torch.Generator() for _ in range(members)])
    assert (type(packed.body[0]) is OneInputConv) == kernel


@pytest.mark.parametrize(("solo", "members", "kind"), [
    (nn.Conv2d(6, 16, 5), 8, GroupedConv),
    (nn.Conv2d(16, 16, 3, padding=1), 2, GroupedConv),
    (nn.Conv2d(8, 32, 3, groups=2), 2, GroupedConv),   # 16 out of 4 in, a solo group
    (nn.Conv2d(6, 16, 5), 1, nn.Conv2d),               # one member: no groups
    (nn.Conv2d(17, 16, 3), 2, nn.Conv2d),              # too many input channels a group
    (nn.Conv2d(6, 17, 3), 2, nn.Conv2d),               # too many output channels a group
    (nn.Conv2d(6, 16, 3, stride=2), 2, nn.Conv2d),
    (nn.Conv2d(6, 16, 3, dilation=2), 2, nn.Conv2d),
    (nn.Conv2d(6, 16, 3, padding="same"), 2, nn.Conv2d),
    (nn.Conv2d(6, 16, 3, padding=1, padding_mode="circular"), 2, nn.Conv2d),
])
def test_a_pack_runs_the_input_gradient_kernel_for_small_grouped_convs(solo, members, kind):
    packed = PackedNet([nn.Sequential(solo) for _ in range(members)],
                       [torch.Generator() for _ in range(members)])
    assert type(packed.body[0]) is kind


def test_lenet5s_pack_runs_a_kernel_for_each_conv():
    nets = [build_model(model_config("lenet5"), downsample_config("maxpool"), (1, 28, 28), 10)
            for _ in range(3)]
    packed = PackedNet(nets, [torch.Generator() for _ in nets])
    assert [type(m) for m in packed.modules() if isinstance(m, nn.Conv2d)] == [
        OneInputConv, GroupedConv]
