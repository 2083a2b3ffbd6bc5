"""Error under common corruptions: MNIST-C's (grey) or CIFAR-10-C's (RGB), per severity.

The first ``images`` test images, each corruption at each severity (the same draws in every
run, so variants meet the same corrupted images); errors are 1 − top-1. The report computes
the mCE against a baseline variant from ``details``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, CorruptionsConfig
from downsample_study.evaluations.corruption_functions import corrupt_pixels, corruption_names

COLUMNS = 8  # panels per row of the examples figure


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int) -> torch.Tensor:
    """``images`` (N×C×H×W, uint8 or floats in [0, 1]) under corruption ``name`` at
    ``severity`` (0: ``images`` themselves), the same dtype on the same device; uint8 rounded."""
    if severity == 0:
        return images
    x = images.detach().cpu().double().numpy()
    byte = images.dtype == torch.uint8
    out = torch.from_numpy(np.ascontiguousarray(
        corrupt_pixels(x / 255 if byte else x, name, severity, seed)))
    out = (out * 255).round() if byte else out
    return out.to(images.device, images.dtype)


@torch.inference_mode()
def error(net: nn.Module, data: EvaluationData, split: Split) -> float:
    """1 − top-1 accuracy of ``net`` on ``split``, fed as the job feeds it."""
    wrong = torch.zeros((), dtype=torch.long, device=data.device)
    for x, y in data.batches(split):
        wrong += (net(x).argmax(1) != y).sum()
    return wrong.item() / len(split)


def examples_figure(clean: torch.Tensor, corrupted: dict[str, torch.Tensor], severity: int,
                    title: str) -> Figure:
    """The first test image, clean and under each corruption at ``severity``."""
    panels = [("clean", clean), *corrupted.items()]
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(1.5 * columns, 1.7 * rows + 0.4), layout="constrained")
    for index, (name, image) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        pixels = image.cpu().permute(1, 2, 0).numpy()
        axes.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0,
                    vmax=255)
        axes.set_title(name, fontsize=7)
        axes.axis("off")
    figure.suptitle(f"{title}: " * bool(title) + f"severity {severity}", fontsize=9)
    return figure


@EVALUATIONS.register("corruptions")
def corruptions(net: nn.Module, data: EvaluationData, cfg: CorruptionsConfig) -> Measured:
    """Clean error and the error under each corruption at each severity of ``cfg``."""
    names = corruption_names(cfg.names, data.test.images.shape[1])
    split = data.first(cfg.images)
    strongest = max(cfg.severities)
    errors: dict[str, list[float]] = {}
    shown: dict[str, torch.Tensor] = {}
    for name in names:
        errors[name] = []
        for severity in cfg.severities:
            images = corrupt(split.images, name, severity, cfg.seed)
            errors[name].append(error(net, data, Split(images, split.labels)))
            if severity == strongest:
                shown[name] = images[0]
    clean = error(net, data, split)
    means = {name: sum(values) / len(values) for name, values in errors.items()}
    summary = {"clean_error": clean, "mean_error": sum(means.values()) / len(means),
               **{f"error_{name}": value for name, value in means.items()}}
    details = {"clean_error": clean, "severities": list(cfg.severities), "errors": errors}
    figure = examples_figure(split.images[0], shown, strongest, data.title)
    return Measured(summary, details, {"examples": figure})
