"""Per-device speed defaults: what the framework does, unasked, to train faster.

Measured on the 2-core CPU machine and recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import ctypes
import os

import torch


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """``speed.channels_last``: true/false as set; unset (null) means "where it pays".

    On CPU, oneDNN's NHWC kernels made a LeNet-5 training step 1.1-1.9x faster for every
    operator but ``aps`` (0.93-0.98x); on GPUs it stays opt-in until it has been measured there.
    """
    return device.type == "cpu" if setting is None else setting


def skip_unloadable_nvml_probe() -> None:
    """Stop torch from trying to load NVML on every optimizer step where there is no NVML.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking whether CUDA is available
    does not initialise it (which would rule out forking). Every ``optimizer.step()`` asks;
    without an NVIDIA driver torch then tries to ``dlopen`` ``libnvidia-ml.so.1`` each time,
    fails, and falls back to the CUDA runtime query anyway: ~0.14 ms per step, 4 % of a LeNet-5
    step on CPU. Where NVML cannot be loaded that fallback is the only answer, so ask for it
    directly; with a driver the NVML check stays.
    """
    import lightning.fabric  # noqa: F401  (sets the variable on import: it must come first)

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
