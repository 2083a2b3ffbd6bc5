"""Per-device speed defaults: what the framework does, unasked, to train faster
(benchmarks/RESULTS.md)."""

from __future__ import annotations

import contextlib
import ctypes
import platform

import torch
from lightning.pytorch.profilers import PassThroughProfiler


def use_tf32_matmuls() -> None:
    """On a GPU, fp32 matmuls in TF32 (cuDNN's convolutions already are, by default)."""
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")


# glibc's mallopt parameters (malloc.h); one GiB: a block below it is kept for reuse
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, KEEP_BELOW = -1, -3, 1 << 30


def keep_freed_memory() -> bool:
    """With glibc, freed blocks up to 1 GiB stay in the process for the next step; returns
    whether it was done. Otherwise each of a pack's activations (MBs) is mapped afresh and
    page-faulted every step: a third of a CPU pack step (benchmarks/RESULTS.md). No pip
    package swaps the allocator in a running process; ``mallopt`` is glibc's own switch."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BELOW)
                and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BELOW))


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """``speed.channels_last``; unset means "where it pays": on CPU, where oneDNN's NHWC kernels
    measured faster (benchmarks/RESULTS.md), not on GPUs until measured there."""
    return device.type == "cpu" if setting is None else setting


class ChannelsLast:
    """For a LightningModule with ``net`` and ``channels_last_setting``: net and inputs in NHWC
    where ``speed.channels_last`` asks, decided in ``setup`` once the device is known."""

    channels_last = False

    def use_memory_format(self, device: torch.device) -> None:
        self.channels_last = use_channels_last(self.channels_last_setting, device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def in_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class NoProfiler(PassThroughProfiler):
    """Lightning's default (no profiling) without its per-call cost: every hook call goes
    through ``profile``, and a shared ``nullcontext`` is cheaper (benchmarks/RESULTS.md)."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return self._nothing
