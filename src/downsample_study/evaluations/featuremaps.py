"""The activations right before and after each downsampling stage, as a figure (seed 003).

One row per test image (the first of each of the first N classes, the same in every run): the
input, then each stage's input and output, a few channels each scaled to its own range, so that
operators can be compared by eye. ``stride2_fold`` adds no layer: its stage is the strided conv.
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from torch import nn
from torchvision.utils import make_grid

from downsample_study.data.batches import Split, TensorBatches
from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, FeatureMapsConfig
from downsample_study.nets.layers import DownsampleLayer


def downsampling_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """Each ``DownsampleLayer``, and each strided conv that is not inside one, in order."""
    stages, inside = [], set()
    for name, module in net.named_modules():
        if isinstance(module, DownsampleLayer):
            stages.append((name, module))
            inside.update(id(m) for m in module.modules())
        elif isinstance(module, nn.Conv2d) and id(module) not in inside and (
            max(module.stride) > 1
        ):
            stages.append((name, module))
    return stages


def first_of_each_class(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Index of the first image of each class 0 .. classes−1 that occurs in ``labels``."""
    found = [torch.nonzero(labels == c)[:1] for c in range(classes)]
    return torch.cat(found).flatten()


@torch.inference_mode()
def capture(net: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(stage name, input, output) for each downsampling stage of ``net`` on ``x``."""
    stages = downsampling_stages(net)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name: str):
        return lambda module, inputs, output: seen.__setitem__(name, (inputs[0], output))

    handles = [module.register_forward_hook(hook(name)) for name, module in stages]
    was_training = net.training
    try:
        net.eval()(x.to(next(net.parameters()).device))
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    return [(name, *seen[name]) for name, _ in stages if name in seen]


def _tiles(activation: torch.Tensor, channels: int) -> torch.Tensor:
    """The first ``channels`` channels of one C×H×W activation tiled into one 2-D image."""
    maps = activation[:channels].float().cpu().unsqueeze(1)
    grid = make_grid(maps, nrow=math.ceil(math.sqrt(len(maps))), padding=1,
                     normalize=True, scale_each=True, pad_value=float("nan"))
    return grid[0]  # NaN borders: drawn as background between the channels


def _shape(t: torch.Tensor) -> str:
    return "×".join(map(str, t.shape))


def feature_map_figure(
    net: nn.Module,
    test: Split,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    images: int,
    channels: int,
    title: str = "",
) -> Figure:
    """The figure for the first test image of each of the first ``images`` classes."""
    picked = test.subset(first_of_each_class(test.labels, images).to(test.labels.device))
    x, y = next(iter(TensorBatches(picked, len(picked), mean, std)))
    stages = capture(net, x)
    columns = 1 + 2 * len(stages)
    fig = Figure(figsize=(1.7 * columns, 1.8 * len(y) + 0.6), layout="constrained")
    axes = fig.subplots(len(y), columns, squeeze=False)
    shown = (x.cpu() * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1))
    for row, label in enumerate(y.tolist()):
        image = shown[row].clamp(0, 1).permute(1, 2, 0).squeeze(-1)
        axes[row, 0].imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_ylabel(f"class {label}")
        for i, (_, before, after) in enumerate(stages):
            for j, activation in enumerate((before, after)):
                axes[row, 1 + 2 * i + j].imshow(_tiles(activation[row], channels).numpy(),
                                                 cmap="viridis")
    axes[0, 0].set_title(f"input\n{_shape(x[0])}", fontsize=8)
    for i, (name, before, after) in enumerate(stages):
        axes[0, 1 + 2 * i].set_title(f"{name} in\n{_shape(before[0])}", fontsize=8)
        axes[0, 2 + 2 * i].set_title(f"{name} out\n{_shape(after[0])}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(f"{title} — first {channels} channels, each scaled to its range", fontsize=9)
    return fig


@EVALUATIONS.register("feature_maps")
def feature_maps(net: nn.Module, data: EvaluationData, cfg: FeatureMapsConfig) -> Measured:
    """The figure alone: nothing to table."""
    figure = feature_map_figure(net, data.test, data.mean, data.std, cfg.images, cfg.channels,
                                title=data.title)
    return Measured(summary={}, figures={"feature_maps": figure})
