"""The contract of an evaluation: ``(net, EvaluationData, settings) -> Measured``.

A builder is registered with ``@EVALUATIONS.register(name)`` beside its schema in
``configs.py``; the job runs it on each member's selected checkpoint, after the test pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from downsample_study.data.batches import Split, TensorBatches, normaliser


@dataclass
class Measured:
    """What one evaluation found: ``summary`` is logged (``test/<evaluation>_<key>``) and
    tabled by the report; ``details`` (plain JSON data) and ``figures`` are kept beside it."""

    summary: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    seconds: float | None = None  # its wall time, set by the runner

    def record(self) -> dict[str, Any]:
        """What ``results.json`` keeps under ``evaluations.<name>``."""
        return {"summary": dict(self.summary), "details": self.details, "seconds": self.seconds}


@dataclass
class EvaluationData:
    """The test split (uint8, on the net's device) and how the job feeds it to the net."""

    test: Split
    mean: tuple[float, ...]
    std: tuple[float, ...]
    batch_size: int
    num_classes: int
    seed: int  # the member's seed
    title: str = ""  # "lenet5 + maxpool on mnist", for figures
    # the network as the member's seed initialises it (before training), where it can be built
    initial: Callable[[], nn.Module] | None = None

    @property
    def device(self) -> torch.device:
        return self.test.images.device

    def first(self, images: int) -> Split:
        """The first ``images`` test images (0: all)."""
        n = len(self.test) if images == 0 else min(images, len(self.test))
        return self.test.subset(torch.arange(n, device=self.device))

    def batches(self, split: Split | None = None) -> TensorBatches:
        """Normalised batches of ``split`` (default: the test split), in order."""
        return TensorBatches(split or self.test, self.batch_size, self.mean, self.std)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] (N×C×H×W) as the net takes them."""
        scale, shift = normaliser(self.mean, self.std, pixels.device)
        return pixels * (255.0 * scale) + shift

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images back in [0, 1] units (the inverse of ``normalise``)."""
        scale, shift = normaliser(self.mean, self.std, x.device)
        return (x - shift) / (255.0 * scale)

    def zero_pixel(self) -> torch.Tensor:
        """Raw pixel 0 after normalisation: 1×C×1×1, what a zero-filled shift uncovers."""
        return normaliser(self.mean, self.std, self.device)[1]


Evaluate = Callable[[nn.Module, EvaluationData, Any], Measured]


def logged_metrics(evaluations: dict[str, dict]) -> dict[str, float]:
    """``results.json``'s evaluations' summary numbers by their logged names:
    ``test/<evaluation>_<key>``."""
    return {f"test/{name}_{key}": value for name, entry in evaluations.items()
            for key, value in entry.get("summary", {}).items()}
