"""At each downsampling point: shift-then-compute against compute-then-shift (circular shifts).

Zhang 2019 (internal shift-equivariance) shows strided layers equivariant only to shifts by
multiples of their accumulated stride; APS and LPS (Chaman & Dokmanić 2021, Rojas-Gomez et al.
2022) are equivariant to the others too, up to rounding the shift to the coarser grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, EquivarianceConfig
from downsample_study.nets.shapes import downsampling_points

AXES = (-2, -1)  # shifts along the height, then along the width


def relative_error(shifted: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Per image ‖shifted − expected‖ / max(‖shifted‖, ‖expected‖): the relative L2 error to
    first order, at most 2, and 0 (not 0/0) where both maps are zero."""
    difference = (shifted - expected).flatten(1).norm(dim=1)
    scale = torch.maximum(shifted.flatten(1).norm(dim=1), expected.flatten(1).norm(dim=1))
    return difference / scale.clamp_min(torch.finfo(scale.dtype).tiny)


def shift_error(shifted: torch.Tensor, unshifted: torch.Tensor, by: int, stride: int,
                axis: int) -> torch.Tensor:
    """Per image, the error of the map of an input shifted by ``by`` px along ``axis`` against
    the unshifted map rolled by by / stride; for an unaligned shift, the nearer of the rolls by
    ⌊by / stride⌋ and ⌈by / stride⌉ (0: equivariant up to rounding the shift to the grid)."""
    rolls = {by // stride, -(-by // stride)}
    return torch.stack([relative_error(shifted, torch.roll(unshifted, t, dims=axis))
                        for t in rolls]).amin(0)


@dataclass
class Point:
    """A downsampling point: its accumulated stride per axis (None where the map does not
    tile the input), and the errors summed over images, per axis and shift of 1..max px."""

    name: str
    strides: tuple[int, int] | None
    sums: torch.Tensor  # 2 × max

    def aligned(self, max_shift: int) -> torch.Tensor:
        """Which (axis, shift) cells move the input by a multiple of the stride."""
        shifts = torch.arange(1, max_shift + 1)
        return torch.stack([shifts % stride == 0 for stride in self.strides])

    def record(self, images: int) -> dict:
        stride = None if self.strides is None else (
            self.strides[0] if self.strides[0] == self.strides[1] else list(self.strides))
        found = {"name": self.name, "stride": stride, "aligned": None, "unaligned": None}
        if self.strides is not None:
            errors = self.sums.double().cpu() / images
            aligned = self.aligned(errors.shape[1])
            for key, cells in (("aligned", aligned), ("unaligned", ~aligned)):
                if cells.any():
                    found[key] = errors[cells].mean().item()
        return found


def accumulated_strides(image: torch.Tensor, feature: torch.Tensor) -> tuple[int, int] | None:
    """Input side / map side along each axis, where the map tiles the input evenly."""
    pairs = [(image.shape[axis], feature.shape[axis]) for axis in AXES]
    if any(side % out for side, out in pairs):
        return None
    return tuple(side // out for side, out in pairs)


class PointOutputs:
    """Forward hooks that keep each named module's output at its first call in a pass."""

    def __init__(self, net: nn.Module, names: list[str]):
        self.outputs: dict[str, torch.Tensor] = {}
        self.hooks = [net.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: self.keep(name, out)) for name in names]

    def keep(self, name: str, out: torch.Tensor) -> None:  # None: the output goes on unchanged
        self.outputs.setdefault(name, out)

    def of(self, net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.outputs = {}
        net(x)
        return self.outputs

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def add_batch(net: nn.Module, outputs: PointOutputs, x: torch.Tensor, points: dict[str, Point],
              max_shift: int) -> None:
    """Add the errors of the images ``x`` to ``points`` (a point's first batch creates it)."""
    unshifted = outputs.of(net, x)
    for name, feature in unshifted.items():
        points.setdefault(name, Point(name, accumulated_strides(x, feature),
                                      torch.zeros(2, max_shift, device=x.device)))
    tiled = [point for point in points.values() if point.strides is not None]
    for a, axis in enumerate(AXES):
        for by in range(1, max_shift + 1):
            shifted = outputs.of(net, torch.roll(x, by, dims=axis))
            for point in tiled:
                point.sums[a, by - 1] += shift_error(shifted[point.name], unshifted[point.name],
                                                     by, point.strides[a], axis).sum()


@EVALUATIONS.register("equivariance")
def equivariance(net: nn.Module, data: EvaluationData, cfg: EquivarianceConfig) -> Measured:
    """Each downsampling point's error under circular shifts of the first ``cfg.images`` test
    images by 1..``cfg.max`` px along each axis, split into aligned and unaligned shifts."""
    split = data.first(cfg.images)
    names = downsampling_points(net)
    points: dict[str, Point] = {}
    was_training = net.training
    outputs = PointOutputs(net, names)
    try:
        net.eval()
        with torch.inference_mode():
            for x, _ in data.batches(split):
                add_batch(net, outputs, x, points, cfg.max)
    finally:
        outputs.remove()
        net.train(was_training)
    records = [points[name].record(len(split)) for name in names if name in points]
    summary = {}
    for key in ("aligned", "unaligned"):
        values = [r[key] for r in records if r[key] is not None]
        if values:  # left out where no point defines it (no point, or no aligned shift)
            summary[key] = sum(values) / len(values)
    return Measured(summary, {"max": cfg.max, "images": len(split), "points": records})
