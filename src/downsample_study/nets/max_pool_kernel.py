"""A pack's 2×2, stride-2 max pool on CPU: torch's values and gradients bit for bit, faster.

torch's CPU pool writes int64 indices, zero-fills the gradient before scattering into it and
takes the channels past the last multiple of 16 one by one: a sixth of a LeNet pack's step, and
neither oneDNN's pool nor torch.compile's was faster (benchmarks/RESULTS.md). So the C file beside
this one is compiled on first use; without a C compiler or AVX-512, torch's pool runs."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from downsample_study.console import say
from downsample_study.nets.shapes import pair, stride_of

SOURCE = Path(__file__).with_suffix(".c")
# the kernel runs on one thread: it measured faster than torch's pool on one and on two
# (benchmarks/RESULTS.md); on more, torch's pool splits its work further
MOST_THREADS = 2
FLAGS = ("-O2", "-mavx512f", "-mavx512bw", "-mavx512vl", "-shared", "-fPIC")


def _build(compiler: list[str]) -> Path:
    """The shared library of this source and these flags, compiled once into the cache."""
    key = hashlib.sha256(SOURCE.read_bytes() + shlex.join([*compiler, *FLAGS]).encode())
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "downsample_study"
    built = folder / "kernels" / f"{SOURCE.stem}-{key.hexdigest()[:16]}.so"
    if not built.is_file():
        built.parent.mkdir(parents=True, exist_ok=True)
        partial = built.with_name(f"{built.name}.{os.getpid()}")  # another process may build too
        done = subprocess.run([*compiler, *FLAGS, "-o", str(partial), str(SOURCE)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
            raise OSError(f"{shlex.join(compiler)} failed: {error}")
        os.replace(partial, built)
    return built


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None where it cannot run here (said once, with the reason)."""
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return None
    compiler = shlex.split(os.environ.get("CC") or "cc")
    if not compiler or shutil.which(compiler[0]) is None:
        say(f"packs: no C compiler ({os.environ.get('CC') or 'cc'}) to build their max pool "
            "kernel; torch's max pool runs")
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except OSError as err:
        say(f"packs: their max pool kernel did not build ({err}); torch's max pool runs")
        return None
    lib.max_pool_forward.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 4 + [ctypes.c_int]
    lib.max_pool_backward.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 4
    return lib


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, relu: bool) -> torch.Tensor:
        n, c, h, w = x.shape
        y = torch.empty((n, c, h // 2, w // 2), memory_format=torch.channels_last)
        places = torch.empty((n, h // 2, w // 2, c), dtype=torch.int8)
        library().max_pool_forward(x.data_ptr(), y.data_ptr(), places.data_ptr(), n, h, w, c,
                                   int(relu))
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
                                    n, h, w, c)
        return grad_x, None


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)``, then ``nn.ReLU`` where ``relu``; run by the kernel where it pays: a
    float32 channels-last CPU map of even height and width (where ceil mode changes nothing),
    torch on at most ``MOST_THREADS`` threads, outside ``torch.compile``."""

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
        if (x.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32
                and torch.get_num_threads() <= MOST_THREADS
                and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0 and x.numel() > 0
                and x.is_contiguous(memory_format=torch.channels_last)
                and not torch.compiler.is_compiling() and library() is not None):
            return _MaxPool2x2.apply(x, self.relu)
        pooled = super().forward(x)
        return torch.relu(pooled) if self.relu else pooled
