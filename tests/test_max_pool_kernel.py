"""The packs' max pool kernel: torch's pool bit for bit where it runs, torch's pool elsewhere."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.nets import max_pool_kernel
from downsample_study.nets.max_pool_kernel import MaxPool2x2
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config
from downsample_study.nets.packed import PackedNet

needs_kernel = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() != "AVX512" or shutil.which("cc") is None,
    reason="the kernel needs AVX-512 and a C compiler (cc)")


@pytest.fixture
def fresh_library(monkeypatch):
    """``library()`` decides again, in this test's own cache folder; torch on one thread (the
    kernel runs on one or two)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    max_pool_kernel.library.cache_clear()
    yield max_pool_kernel.library
    max_pool_kernel.library.cache_clear()


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


@needs_kernel
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("special", ["ties", "nan", "inf", "signed_zero"])
@pytest.mark.parametrize("shape", [(2, 1, 2, 2), (3, 15, 4, 6), (2, 16, 8, 8), (3, 17, 6, 4),
                                   (5, 30, 28, 28), (4, 80, 10, 10)])
def test_the_kernel_gives_torchs_values_and_gradients_bit_for_bit(shape, special, relu,
                                                                    fresh_library):
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


@needs_kernel
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", ["odd height", "odd width", "NCHW", "float64", "three threads",
                                  "ceil mode"])
def test_what_the_kernel_does_not_cover_runs_torchs_pool(case, relu, fresh_library, monkeypatch):
    if case == "three threads":  # torch's pool splits its work between them
        monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
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


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_the_kernel_runs_with_torch_on_one_or_two_threads(threads, fresh_library, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    x = _map((2, 3, 4, 4), "ties").requires_grad_()
    assert type(MaxPool2x2()(x).grad_fn).__name__ == "_MaxPool2x2Backward"


@needs_kernel
def test_a_second_derivative_through_the_kernel_is_refused(fresh_library):
    x = _map((2, 4, 4, 4), "ties").requires_grad_()
    (grad,) = torch.autograd.grad(MaxPool2x2()(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        grad.sum().backward()


@needs_kernel
def test_the_kernel_is_compiled_once_into_the_cache(fresh_library, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert fresh_library() is not None
    built = list((tmp_path / "cache" / "downsample_study" / "kernels").iterdir())
    assert [p.suffix for p in built] == [".so"]
    stamp = built[0].stat().st_mtime_ns
    fresh_library.cache_clear()
    assert fresh_library() is not None and built[0].stat().st_mtime_ns == stamp


def test_a_parallel_sweep_builds_the_kernel_before_forking_its_workers(fresh_library,
                                                                      monkeypatch):
    """A forked worker that ran the compiler itself later hung in OpenMP (the GPU check's
    rehearsal, a fresh cache): the workers inherit the built kernel instead."""
    from downsample_study import internals
    from downsample_study.sweeps.launchers import fork_workers

    monkeypatch.setattr(internals, "fork_joblib_workers", lambda: False)  # loky untouched
    fork_workers()
    assert fresh_library.cache_info().currsize == 1


@pytest.mark.parametrize(("compiler", "said"), [
    ("no-such-compiler", "packs: no C compiler (no-such-compiler) to build their max pool "
                         "kernel; torch's max pool runs"),
    ("false", "packs: their max pool kernel did not build (false failed: exit status 1); "
              "torch's max pool runs"),
])
def test_without_a_working_compiler_packs_say_so_once_and_pool_with_torch(
        compiler, said, fresh_library, monkeypatch, caplog):
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("without AVX-512 the kernel is not tried")
    monkeypatch.setenv("CC", compiler)
    caplog.set_level(logging.INFO, logger="downsample_study")
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    pool = MaxPool2x2()
    assert torch.equal(pool(x), F.max_pool2d(x, 2)) and torch.equal(pool(x), F.max_pool2d(x, 2))
    assert [record.getMessage() for record in caplog.records].count(said) == 1


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
