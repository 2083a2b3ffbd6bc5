"""Per-device speed defaults: what the framework does, unasked, to train faster.

Measured on the 2-core CPU machine and recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import torch
from lightning.pytorch.profilers import PassThroughProfiler


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """``speed.channels_last``: true/false as set; unset (null) means "where it pays".

    On CPU, oneDNN's NHWC kernels made training steps of LeNet-5 and ConvPool-3 1.1-2.0x faster
    for every operator but ``aps`` (0.93-1.01x, benchmarks/RESULTS.md); on GPUs it stays
    opt-in until it has been measured there.
    """
    return device.type == "cpu" if setting is None else setting


def skip_unloadable_nvml_probe() -> None:
    """Stop torch from trying to load NVML on every optimizer step where there is no NVML.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking whether CUDA is available
    does not initialise it (which would rule out forking). Every ``optimizer.step()`` asks;
    without an NVIDIA driver torch then tries to ``dlopen`` ``libnvidia-ml.so.1`` each time,
    fails, and falls back to the CUDA runtime query anyway: ~0.14 ms per step, 4 % of a LeNet-5
    step on CPU. Where NVML cannot be loaded that fallback is the only answer, so ask for it
    directly; with a driver the NVML check stays. (Lightning, imported by this module, has
    set the variable by the time this runs.)
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


class NoProfiler(PassThroughProfiler):
    """Lightning's default (no profiling) without its per-call cost.

    Lightning wraps every hook call in ``profiler.profile(name)``, ~100 times a training step;
    the default's generator-based context manager costs ~28 µs a step in all. The default
    when ``trainer.profiler`` is not set.
    """

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return self._nothing
