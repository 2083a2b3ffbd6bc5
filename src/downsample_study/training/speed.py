"""Per-device speed defaults: what the framework does, unasked, to train faster.

Measured on the 2-core CPU machine and recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib

import torch
from lightning.pytorch.profilers import PassThroughProfiler


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """``speed.channels_last``: true/false as set; unset (null) means "where it pays".

    On CPU, oneDNN's NHWC kernels made training steps of LeNet-5 and ConvPool-3 1.1-2.0x faster
    for every operator but ``aps`` (0.93-1.01x, benchmarks/RESULTS.md); on GPUs it stays
    opt-in until it has been measured there.
    """
    return device.type == "cpu" if setting is None else setting


class ChannelsLast:
    """For a LightningModule with ``net`` and ``channels_last_setting``: the net and its
    inputs in NHWC where ``speed.channels_last`` asks for it (decided in ``setup``, once the
    device is known)."""

    channels_last = False

    def use_memory_format(self, device: torch.device) -> None:
        self.channels_last = use_channels_last(self.channels_last_setting, device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def in_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class NoProfiler(PassThroughProfiler):
    """Lightning's default (no profiling) without its per-call cost.

    Lightning wraps every hook call in ``profiler.profile(name)``, ~100 times a training step;
    the default's generator-based context manager costs ~28 µs a step in all. The default
    when ``trainer.profiler`` is not set.
    """

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return self._nothing
