"""The packs' max pool kernel: torch's pool bit for bit where it runs, torch's pool elsewhere."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from support import needs_kernels
from torch import nn

from downsample_study.nets.kernels.max_pool import MaxPool2x2
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config
from downsample_study.nets.packed import PackedNet


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def _map(shape, special: str, seed: int = 0) -> torch.Tensor:
    """Whole numbers (ties in most windows), with ``special`` values strewn in."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).mul(2).round()
    flat = x.view(-1)
    if special == "nan":  # windows with one, two or four NaNs: the last one is taken
        flat[::3] = float("nan")
    elif special == "inf":
        flat[::2] = -float("inf")
    elif special == "signed_zero":  # 0.0 and -0.0 tie: the first is taken
        flat[::2] = -0.0
    return x.contiguous(memory_format=torch.channels_last)


@needs_kernels
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("special", ["ties", "nan", "inf", "signed_zero"])
@pytest.mark.parametrize("shape", [(2, 1, 2, 2), (3, 15, 4, 6), (2, 16, 8, 8), (3, 17, 6, 4),
                                   (5, 30, 28, 28), (4, 80, 10, 10)])
def test_the_kernel_gives_torchs_values_and_gradients_bit_for_bit(shape, special, relu):
    """Its pool, and its pool then ReLU, against torch's layers."""
    x = _map(shape, special).requires_grad_()
    grad = _map((shape[0], shape[1], shape[2] // 2, shape[3] // 2), "signed_zero", seed=1)
    expected = F.max_pool2d(x, 2)
    expected = torch.relu(expected) if relu else expected
    pooled = MaxPool2x2(relu=relu)(x)
    assert type(pooled.grad_fn).__name__ == "_MaxPool2x2Backward"  # the kernel ran
    assert torch.equal(_bits(pooled), _bits(expected))
    assert pooled.is_contiguous(memory_format=torch.channels_last)
    (want,) = torch.autograd.grad(expected, x, grad)
    (got,) = torch.autograd.grad(pooled, x, grad)
    assert torch.equal(_bits(got), _bits(want))


@needs_kernels
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", ["odd height", "odd width", "NCHW", "float64", "ceil mode"])
def test_what_the_kernel_does_not_cover_runs_torchs_pool(case, relu):
    shape = {"odd height": (2, 3, 7, 8), "odd width": (2, 3, 8, 5)}.get(case, (2, 3, 8, 8))
    x = torch.randn(shape, dtype=torch.float64 if case == "float64" else torch.float32)
    if case != "NCHW":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    pool = MaxPool2x2(ceil_mode=case == "ceil mode", relu=relu)
    pooled = pool(x)
    reference = nn.MaxPool2d(2, ceil_mode=case == "ceil mode")(x)
    reference = torch.relu(reference) if relu else reference
    assert torch.equal(pooled, reference)
    ran_kernel = type(pooled.grad_fn).__name__ == "_MaxPool2x2Backward"
    assert ran_kernel == (case == "ceil mode")  # even sizes: ceil mode changes nothing


@needs_kernels
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_the_kernel_splits_its_rows_among_torchs_threads_bit_for_bit(threads, torch_threads):
    """8 threads share 6 rows: some get none."""
    x = _map((3, 20, 4, 6), "nan").requires_grad_()
    grad = _map((3, 20, 2, 3), "signed_zero", seed=1)
    torch_threads(threads)
    pooled = MaxPool2x2(relu=True)(x)
    (got,) = torch.autograd.grad(pooled, x, grad)
    torch_threads(1)
    expected = torch.relu(F.max_pool2d(x, 2))
    (want,) = torch.autograd.grad(expected, x, grad)
    assert type(pooled.grad_fn).__name__ == "_MaxPool2x2Backward"
    assert torch.equal(_bits(pooled), _bits(expected)) and torch.equal(_bits(got), _bits(want))


@needs_kernels
def test_a_second_derivative_through_the_kernel_is_refused():
    x = _map((2, 4, 4, 4), "ties").requires_grad_()
    (grad,) = torch.autograd.grad(MaxPool2x2()(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        grad.sum().backward()


@pytest.mark.parametrize(("pool", "kernel"), [
    (nn.MaxPool2d(2), True), (nn.MaxPool2d(2, 2, ceil_mode=True), True),
    (nn.MaxPool2d((2, 2), stride=(2, 2)), True), (nn.MaxPool2d(2, stride=1), False),
    (nn.MaxPool2d(3, 2), False), (nn.MaxPool2d(2, padding=1), False),
    (nn.MaxPool2d(2, dilation=2), False),
])
def test_a_pack_runs_the_kernel_for_each_2x2_stride_2_max_pool_alone(pool, kernel):
    nets = [nn.Sequential(nn.Conv2d(1, 2, 3), pool) for _ in range(2)]
    packed = PackedNet(nets, [torch.Generator() for _ in nets])
    assert (type(packed.body[1]) is MaxPool2x2) == kernel


def test_lenet5_packs_both_max_pools_into_the_kernel_the_first_with_its_relus():
    """conv, ReLU, pool, ReLU: the first ReLU moves after the pool, the second goes (ReLU
    twice) and the pool takes the one left in."""
    nets = [build_model(model_config("lenet5"), downsample_config("maxpool"), (1, 28, 28), 10)
            for _ in range(2)]
    packed = PackedNet(nets, [torch.Generator() for _ in nets])
    pools = [m for m in packed.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(type(m), m.relu) for m in pools] == [(MaxPool2x2, True), (MaxPool2x2, False)]
    assert [name for name, _ in packed.body.named_children()][:3] == ["conv1", "down1", "conv2"]
