"""Accuracy at every integer offset within ±radius: the grid adversary, ripple, flips, fidelity.

Exact where random shifts sample: Engstrom et al. 2019's grid adversary, Azulay & Weiss 2019's
ripple (accuracy periodic in the offset modulo the total stride), the flips between neighbouring
offsets and TIPS's shift fidelity (Saha & Gokhale 2024), all from one pass over the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn

from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, ShiftFill, ShiftGridConfig
from downsample_study.evaluations.shift import shift_images, total_stride

UNKNOWN_STRIDE_PERIOD = 2  # maps that do not halve evenly: the ripple of 1-px parity


def grid_offsets(radius: int) -> torch.Tensor:
    """Every (dy, dx) in [-radius, radius]², row-major (dy outer): an O×2 integer tensor."""
    steps = torch.arange(-radius, radius + 1)
    return torch.cartesian_prod(steps, steps)


def grid_predictions(net: nn.Module, x: torch.Tensor, offsets: torch.Tensor, mode: ShiftFill,
                     fill: torch.Tensor) -> torch.Tensor:
    """``net``'s class for each image of ``x`` at each offset: N×O, one forward per offset."""
    return torch.stack([net(shift_images(x, offset.expand(len(x), 2), mode, fill)).argmax(1)
                        for offset in offsets], dim=1)


@dataclass
class GridCounts:
    """What the summary needs, summed over images batch by batch, kept on the device."""

    correct: torch.Tensor  # (2k+1)×(2k+1): images classified correctly at each offset
    always_correct: torch.Tensor  # images correct at every offset (the grid adversary fails)
    flips: torch.Tensor  # neighbouring offsets (1 px apart) with different classes
    faithful: torch.Tensor  # (image, offset) pairs correct and unchanged from the unshifted

    @classmethod
    def zeros(cls, radius: int, device: torch.device) -> GridCounts:
        side = 2 * radius + 1
        count = torch.zeros((), dtype=torch.long, device=device)
        return cls(torch.zeros(side, side, dtype=torch.long, device=device),
                   count, count.clone(), count.clone())

    def add(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Count ``predictions`` (N×side×side, row dy + k, column dx + k) against ``labels``."""
        side = self.correct.shape[0]
        right = predictions == labels[:, None, None]
        unshifted = predictions[:, side // 2, side // 2]
        self.correct += right.sum(0)
        self.always_correct += right.flatten(1).all(1).sum()
        self.flips += ((predictions[:, 1:] != predictions[:, :-1]).sum()
                       + (predictions[:, :, 1:] != predictions[:, :, :-1]).sum())
        self.faithful += (right & (predictions == unshifted[:, None, None])).sum()


def ripple(accuracy: torch.Tensor, period: int) -> float:
    """The spread (max − min) of the accuracy averaged over the offsets of each residue class
    (dy mod period, dx mod period): 0 where accuracy does not vary with the phase of the grid."""
    side = accuracy.shape[0]
    phase = torch.arange(side) % period
    means = [accuracy[phase == py][:, phase == px].mean()
             for py in range(min(period, side)) for px in range(min(period, side))]
    return float(max(means) - min(means))


def summarise(counts: GridCounts, images: int, radius: int, period: int) -> dict:
    """One mode's summary numbers and details from its ``counts`` over ``images`` images."""
    side = 2 * radius + 1
    accuracy = counts.correct.double().cpu() / images
    pairs = 2 * side * (side - 1)  # horizontal and vertical neighbours on the grid
    summary = {
        "mean": accuracy.mean().item(),
        # the grid adversary's accuracy: an image counts only if no offset misleads the net
        "worst": counts.always_correct.item() / images,
        "ripple": ripple(accuracy, period),
        "flip_rate": counts.flips.item() / (images * pairs),
        "fidelity": counts.faithful.item() / (images * side * side),
    }
    details = {"accuracy": accuracy.tolist(), "lowest_offset_accuracy": accuracy.min().item(),
               "clean_accuracy": accuracy[radius, radius].item()}
    return {"summary": summary, "details": details}


def heatmap(details: dict, modes: list[ShiftFill], radius: int, title: str) -> Figure:
    """Accuracy per offset, one panel per fill mode, on one colour scale."""
    fig = Figure(figsize=(3.4 * len(modes) + 0.8, 3.2), layout="constrained")
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    extent = (-radius - 0.5, radius + 0.5, radius + 0.5, -radius - 0.5)
    grids = [torch.tensor(details[str(mode)]["accuracy"]) for mode in modes]
    low, high = min(g.min().item() for g in grids), max(g.max().item() for g in grids)
    for ax, mode, grid in zip(axes, modes, grids, strict=True):
        image = ax.imshow(grid.numpy(), extent=extent, vmin=low, vmax=high, cmap="viridis")
        ax.set(title=f"{mode} fill", xlabel="dx (px)", ylabel="dy (px)")
    fig.colorbar(image, ax=list(axes), label="top-1 accuracy")
    fig.suptitle(f"{title} — accuracy per shift" if title else "accuracy per shift", fontsize=9)
    return fig


@EVALUATIONS.register("shift_grid")
def shift_grid(net: nn.Module, data: EvaluationData, cfg: ShiftGridConfig) -> Measured:
    """Accuracy of ``net`` on the first ``cfg.images`` test images at every offset of the grid,
    per fill mode (``zero`` uncovers raw pixel 0)."""
    split = data.first(cfg.images)
    offsets = grid_offsets(cfg.radius)
    side = 2 * cfg.radius + 1
    counts = {mode: GridCounts.zeros(cfg.radius, data.device) for mode in cfg.modes}
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            batches = data.batches(split)
            stride = total_stride(net, next(iter(batches))[0])
            for x, y in batches:
                for mode in cfg.modes:
                    predictions = grid_predictions(net, x, offsets, mode, data.zero_pixel())
                    counts[mode].add(predictions.view(len(x), side, side), y)
    finally:
        net.train(was_training)
    period = UNKNOWN_STRIDE_PERIOD if stride is None else stride
    found = {str(mode): summarise(counts[mode], len(split), cfg.radius, period)
             for mode in cfg.modes}
    details = {"radius": cfg.radius, "images": len(split), "stride": stride,
               "ripple_period": period, **{mode: f["details"] for mode, f in found.items()}}
    summary = {f"{key}_{mode}": value for mode, f in found.items()
               for key, value in f["summary"].items()}
    return Measured(summary, details,
                    {"heatmap": heatmap(details, cfg.modes, cfg.radius, data.title)})
