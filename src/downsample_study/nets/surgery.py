"""Module surgery: every downsampling point of any network handed to one operator.

Cf. Composer's ``apply_blurpool``, which does this for BlurPool alone: a strided conv keeps its
weights, runs at the operator's stride and the operator's layer follows it; a strided pool
becomes the operator's layer. Each point's output keeps its size, or the swap is refused.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from downsample_study.errors import ShapeError
from downsample_study.nets import shapes
from downsample_study.nets.downsample_base import DownsampleConfig
from downsample_study.nets.layers import Subsample
from downsample_study.nets.operators import create_downsample, downsample_config
from downsample_study.nets.points import DownsamplePoint, Rounding, Stands
from downsample_study.nets.shapes import (
    POOLS,
    count_params,
    describe,
    io_shapes,
    run_once,
    stride_of,
)

IMAGENET_SIZE = (224, 224)
MIN_CHANNELS = 16  # Composer's: a stem conv on RGB (3 channels) stays as it is


@dataclass(frozen=True)
class Swap:
    """One downsampling point and what became of it."""

    name: str  # the module's path in the network
    was: str
    now: str
    params_added: int


def downsampling_points(model: nn.Module, min_channels: int = MIN_CHANNELS) -> list[str]:
    """The names of ``model``'s downsampling points that a swap changes: as
    ``shapes.downsampling_points``, a conv with fewer than ``min_channels`` inputs left out."""
    return shapes.downsampling_points(model, min_channels)


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    """``model.set_submodule(name, module)``, which torch 2.4 (the floor) lacks."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _replacement(module: nn.Module, cfg: DownsampleConfig, sizes) -> nn.Module:
    (channels, *size), (_, *out_size) = sizes
    rounding = (Rounding.ceil if out_size == [math.ceil(n / 2) for n in size]
                else Rounding.floor)
    if isinstance(module, nn.Conv2d):
        kernel, padding = module.kernel_size, module.padding
        at_stride_1 = tuple(n + 2 * p - d * (k - 1) for n, p, d, k in zip(
            size, padding, module.dilation, kernel))
        op = create_downsample(cfg, DownsamplePoint(module.out_channels, rounding,
                                                    at_stride_1, Stands.conv))
        module.stride = (op.conv_stride, op.conv_stride)  # the same weights
        first = ("conv", module)
    else:
        op = create_downsample(cfg, DownsamplePoint(channels, rounding, tuple(size),
                                                    Stands.pool))
        first = ("subsample", Subsample(op.conv_stride))
    layers = [first] if isinstance(module, nn.Conv2d) or op.conv_stride > 1 else []
    if not isinstance(op.layer, nn.Identity):
        layers.append(("down", op.layer))
    return layers[0][1] if len(layers) == 1 else nn.Sequential(OrderedDict(layers))


def swap_downsampling(model: nn.Module, downsample: DownsampleConfig | str,
                      input_shape: tuple[int, ...], *,
                      min_channels: int = MIN_CHANNELS) -> list[Swap]:
    """Give every downsampling point of ``model`` (``downsampling_points``) to the operator
    ``downsample`` (a name, or its config), in place, for inputs of ``input_shape`` (C, H, W).

    Returns one ``Swap`` per point. A point of another stride than 2, or whose output would
    change size under the operator, raises ``ShapeError`` naming both.
    """
    cfg = downsample_config(downsample) if isinstance(downsample, str) else downsample
    names = downsampling_points(model, min_channels)
    sizes = io_shapes(model, names, input_shape)
    swaps = []
    for name in names:
        module = model.get_submodule(name)
        stride = stride_of(module)
        if stride != (2, 2):
            raise ShapeError(f"{name} ({describe(module)}): a stride of {stride}; the "
                             f"operators halve a map (stride 2), {cfg.name} included")
        if name not in sizes:
            raise ShapeError(f"{name} ({describe(module)}): not reached by a forward pass on "
                             f"{'×'.join(map(str, input_shape))} inputs")
        was, before = describe(module), count_params(module)
        new = _replacement(module, cfg, sizes[name])
        _set(model, name, new)
        swaps.append(Swap(name, was, describe(new), count_params(new) - before))
    after = io_shapes(model, names, input_shape)
    for name in names:
        if after.get(name, (None, None))[1] != sizes[name][1]:
            got = after.get(name, (None, ("nothing",)))[1]
            raise ShapeError(
                f"{name}: {cfg.name} gives a {'×'.join(map(str, got))} map where the network "
                f"has {'×'.join(map(str, sizes[name][1]))}; this point cannot take it")
    return swaps


def _call_order(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module]]:
    """The leaf modules in the order one forward pass calls them (each once)."""
    order: dict[str, nn.Module] = {}
    run_once(model, input_shape, [module.register_forward_hook(
        lambda module, args, out, name=name: order.setdefault(name, module) and None)
        for name, module in model.named_modules() if not list(module.children())])
    return list(order.items())


def adapt_stem(model: nn.Module, input_shape: tuple[int, ...], small_input: bool) -> None:
    """Fit a network made for ImageNet to ``input_shape`` (C, H, W), in place: its first conv
    takes C channels; with ``small_input``, a strided first conv runs at stride 1 and a pool
    called between it and the next conv is dropped (a ResNet's or DenseNet's stem pool)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ShapeError(f"{type(model).__name__}: no Conv2d to take the input")
    # the order does not depend on the size: ImageNet's, which every such network takes
    order = _call_order(model, (convs[0].in_channels, *IMAGENET_SIZE))
    (stem_name, stem), *rest = [(n, m) for n, m in order if isinstance(m, nn.Conv2d)] or [
        (None, None)]
    strided = max(stem.stride) > 1
    conv = nn.Conv2d(input_shape[0], stem.out_channels, stem.kernel_size,
                     stride=1 if small_input else stem.stride, padding=stem.padding,
                     dilation=stem.dilation, groups=1, bias=stem.bias is not None,
                     padding_mode=stem.padding_mode)
    _set(model, stem_name, conv)
    if not (small_input and strided):
        return
    after = [n for n, _ in order][[n for n, _ in order].index(stem_name) + 1:]
    next_conv = rest[0][0] if rest else None
    for name in after[: after.index(next_conv) if next_conv in after else None]:
        if isinstance(model.get_submodule(name), POOLS):
            _set(model, name, nn.Identity())
            return


def format_swaps(swaps: list[Swap]) -> str:
    """The swaps as a table: point, what it was, what it is, parameters added."""
    rows = [("point", "was", "now", "params added"),
            *((s.name, s.was, s.now, f"{s.params_added:,}") for s in swaps)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.rjust(w) if i == 3 else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
