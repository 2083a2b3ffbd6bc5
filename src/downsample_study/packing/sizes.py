"""``pack.size=auto``: the pack size measured best for the device (benchmarks/RESULTS.md,
``packed/sequential@K=…`` of ``make bench``)."""

from __future__ import annotations

from typing import Any

from downsample_study.config.schema import PackConfig

# CPU: the best ratio of the 2-core machine's measurements; CUDA: not measured yet (issue:
# the GPU path), a guess that keeps an H200 busier than one LeNet does
AUTO_SIZE = {"cpu": 8, "cuda": 32}


def device_kind(accelerator: Any) -> str:
    """Where a job of ``trainer.accelerator`` trains: cuda or cpu."""
    import torch

    if str(accelerator) in ("gpu", "cuda"):
        return "cuda"
    if str(accelerator) == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def pack_size(size: Any, accelerator: Any) -> int:
    """``pack.size`` as a number of members (a ``ConfigError`` if it is neither one nor
    auto)."""
    size = PackConfig(size=str(size)).size
    return AUTO_SIZE[device_kind(accelerator)] if size == "auto" else int(size)
