"""Inference cost on the job's device: latency per batch size (median of repeats) and peak memory.

What an operator costs at test time, beside what it buys: latency and images per second for each
``cost.batch_sizes``, and the memory one forward pass of the largest batch allocates at its peak.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from downsample_study.console import native_lines_quieted
from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, CostConfig

MB = 2**20  # bytes in the "MB" of ``peak_memory_mb`` (MiB, as torch's memory summaries count)


def benchmark_batch(data: EvaluationData, batch_size: int) -> torch.Tensor:
    """A normalised batch of ``batch_size`` test images: the first ones, the split repeated
    where it is smaller."""
    index = torch.arange(batch_size, device=data.device) % len(data.test)
    return data.normalise(data.test.images.index_select(0, index).float() / 255.0)


def synchronize(device: torch.device) -> None:
    """Wait for the kernels queued on ``device`` (nothing to wait for on the CPU)."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def forward_times(net: nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> list[float]:
    """Seconds per forward pass of ``x``, ``repeats`` times after ``warmup`` untimed passes.

    ``time.perf_counter`` around each pass with a device synchronize, not
    ``torch.utils.benchmark.Timer``: its ``timeit`` adds warmup runs of its own and its
    ``blocked_autorange`` chooses how many runs to time, so neither honours repeats and warmup."""
    for _ in range(warmup):
        net(x)
    synchronize(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        net(x)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return times


def cpu_peak_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """The most bytes one forward pass of ``x`` holds allocated at once on the CPU, beyond what
    was allocated before it: torch's profiler records each CPU allocation and free in order
    (``profile_memory``; its chrome trace keeps the order), and the running sum peaks there.

    Peak RSS is not it (the allocator keeps freed pages) and ``tracemalloc`` sees no tensor."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with native_lines_quieted(), torch.profiler.profile(activities=activities,
                                                         profile_memory=True) as profiler:
        net(x)
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"
                     and e.get("args", {}).get("Device Type") == 0), key=lambda e: e["ts"])
    held = peak = 0
    for event in memory:
        held += event["args"]["Bytes"]
        peak = max(peak, held)
    return peak


def peak_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """The forward pass's own peak allocation: ``torch.cuda.max_memory_allocated`` above what
    was allocated before it on CUDA, the profiler's count of allocations on the CPU."""
    if x.device.type != "cuda":
        return cpu_peak_bytes(net, x)
    synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    before = torch.cuda.memory_allocated(x.device)
    net(x)
    synchronize(x.device)
    return torch.cuda.max_memory_allocated(x.device) - before


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or device.type


@EVALUATIONS.register("cost")
@torch.inference_mode()
def cost(net: nn.Module, data: EvaluationData, cfg: CostConfig) -> Measured:
    """``latency_ms_b<B>``, ``images_per_s_b<B>`` per batch size and ``peak_memory_mb`` of the
    largest; per batch size ``warmup`` + ``repeats`` + 1 (the memory's) forward passes."""
    was_training = net.training
    net.eval()
    times: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    try:
        for batch_size in cfg.batch_sizes:
            x = benchmark_batch(data, batch_size)
            times[str(batch_size)] = forward_times(net, x, cfg.repeats, cfg.warmup)
            peaks[str(batch_size)] = peak_bytes(net, x) / MB
    finally:
        net.train(was_training)
    summary: dict[str, float] = {}
    for batch_size in cfg.batch_sizes:
        median = statistics.median(times[str(batch_size)])
        summary[f"latency_ms_b{batch_size}"] = 1000.0 * median
        summary[f"images_per_s_b{batch_size}"] = batch_size / median
    summary["peak_memory_mb"] = peaks[str(max(cfg.batch_sizes))]
    details = {
        "device": device_name(data.device),
        "device_type": data.device.type,
        "threads": torch.get_num_threads(),
        "repeats": cfg.repeats,
        "warmup": cfg.warmup,
        "input_shape": list(data.test.images.shape[1:]),
        "times_s": times,
        "peak_memory_mb": peaks,
        "peak_memory_by": ("torch.cuda.max_memory_allocated" if data.device.type == "cuda"
                           else "torch.profiler (profile_memory)"),
    }
    return Measured(summary=summary, details=details)
