"""Shape tracing while a model is built, the collapse check, and the layer table.

A ``LayerStack`` runs each layer on a dummy input as it is added, so a map that collapses stops
the build with a ``ShapeError`` naming the layer and why, before any data is loaded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from downsample_study.errors import ShapeError
from downsample_study.internals import fft_flop_formulas
from downsample_study.nets.layers import DownsampleLayer, Subsample

POOLS = (nn.MaxPool2d, nn.AvgPool2d)
OUTPUT_SIZE_FORMULA = "out = floor((in + 2·pad − dilation·(k − 1) − 1) / stride) + 1"


def pair(value) -> tuple[int, int]:
    """A size given as one int or a pair (a layer's kernel, stride, padding) as a pair."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _fmt(shape) -> str:
    return "×".join(str(s) for s in shape)


def stride_of(module: nn.Module) -> tuple[int, int]:
    """A conv's, pool's or subsampling's stride (a pool's defaults to its kernel)."""
    if isinstance(module, POOLS):
        return pair(module.stride or module.kernel_size)
    return pair(getattr(module, "stride", 1))


def describe(module: nn.Module) -> str:
    """A short name of a layer: ``Conv2d 16→32 k3 s2``, ``MaxPool2d k2 s2``, or for a sequence
    (an operator's layers, a swapped point) its parts joined by ``+``."""
    if isinstance(module, nn.Sequential):
        return " + ".join(map(describe, module.children()))
    if isinstance(module, nn.Conv2d):
        groups = f", groups {module.groups}" if module.groups > 1 else ""
        return (f"Conv2d {module.in_channels}→{module.out_channels} k{module.kernel_size[0]} "
                f"s{module.stride[0]}{groups}")
    if isinstance(module, POOLS):
        return f"{type(module).__name__} k{pair(module.kernel_size)[0]} s{stride_of(module)[0]}"
    if isinstance(module, Subsample):
        return f"Subsample s{module.stride}"
    return type(module).__name__


def downsampling_points(model: nn.Module, min_channels: int = 1) -> list[str]:
    """The names of ``model``'s downsampling points, in module order: each set of layers an
    operator added (a ``DownsampleLayer``, one point), and outside those every conv with a
    stride above 1 and at least ``min_channels`` inputs, strided pool and subsampling."""
    def strided(module: nn.Module) -> bool:
        return (isinstance(module, (nn.Conv2d, *POOLS, Subsample)) and max(stride_of(module)) > 1
                and (not isinstance(module, nn.Conv2d) or module.in_channels >= min_channels))

    found: list[str] = []
    for name, module in model.named_modules():
        inside = any(name.startswith(point + ".") for point in found)  # an operator's layers
        if not inside and (isinstance(module, DownsampleLayer) or strided(module)):
            found.append(name)
    return found


def _explain(module: nn.Module, in_shape: tuple[int, ...]) -> str:
    """Why a conv or pool cannot run on ``in_shape`` (C, H, W), in the output-size formula."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return "its output would be empty"
    kernel = pair(module.kernel_size)
    stride = pair(module.stride or module.kernel_size)
    padding = pair(module.padding) if not isinstance(module.padding, str) else (0, 0)
    dilation = pair(getattr(module, "dilation", 1))
    size = in_shape[-2:]
    out = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(size, kernel, stride, padding, dilation)
    ]
    needed = [d * (k - 1) + 1 - 2 * p for k, p, d in zip(kernel, padding, dilation)]
    return (
        f"its {_fmt(kernel)} kernel (padding {_fmt(padding)}, dilation {_fmt(dilation)}) needs "
        f"an input of at least {_fmt(needed)} but gets {_fmt(size)}: the output size formula "
        f"({OUTPUT_SIZE_FORMULA}) gives {_fmt(out)}. The feature map has collapsed: use a larger "
        f"input, fewer downsampling stages, or padding"
    )


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    downsample: bool


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def downsample_params(model: nn.Module) -> int:
    """Parameters inside the layers that downsampling operators added."""
    return sum(count_params(m) for m in model.modules() if isinstance(m, DownsampleLayer))


class LayerStack:
    """Builds an ``nn.Sequential`` layer by layer, tracing shapes as it goes."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.input_shape = tuple(input_shape)
        self.shape = tuple(input_shape)
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()

    def add(self, name: str, module: nn.Module) -> LayerStack:
        if isinstance(module, nn.Identity):
            return self
        if name in self.layers:
            raise ValueError(f"duplicate layer name {name!r}")
        self.shape = self._trace(name, module)
        self.layers[name] = module
        return self

    def _trace(self, name: str, module: nn.Module) -> tuple[int, ...]:
        was_training = module.training
        module.eval()  # BatchNorm on one dummy sample
        try:
            with torch.no_grad():
                out = module(torch.zeros(1, *self.shape))
        except RuntimeError as err:
            reason = _explain(module, self.shape)
            if reason == "its output would be empty":
                reason = str(err).splitlines()[0]
            raise ShapeError(self._where(name, module) + reason) from None
        finally:
            module.train(was_training)
        if out.numel() == 0:
            raise ShapeError(self._where(name, module) + _explain(module, self.shape))
        return tuple(out.shape[1:])

    def _where(self, name: str, module: nn.Module) -> str:
        return f"layer {name!r} ({module!r}) cannot take its input of shape {_fmt(self.shape)}: "

    def build(self) -> nn.Sequential:
        return nn.Sequential(self.layers)


def run_once(model: nn.Module, input_shape: tuple[int, ...], hooks: list) -> None:
    """One forward pass of a zero image in eval mode, ``hooks`` removed after it; a network
    that cannot take the input is a ``ShapeError`` naming both."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except RuntimeError as err:
        raise ShapeError(f"{type(model).__name__} cannot take {_fmt(input_shape)} inputs: "
                         f"{str(err).splitlines()[0]}") from None
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()


def io_shapes(model: nn.Module, names: list[str],
              input_shape: tuple[int, ...]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The input and output shape (C, H, W) of each module in ``names`` the first time one
    forward pass calls it (a module it does not call is left out)."""
    seen: dict[str, tuple[tuple[int, ...], ...]] = {}

    def record(name: str, args: tuple, out: torch.Tensor) -> None:  # None: the output stays
        seen.setdefault(name, (tuple(args[0].shape[1:]), tuple(out.shape[1:])))

    run_once(model, input_shape, [model.get_submodule(name).register_forward_hook(
        lambda module, args, out, name=name: record(name, args, out)) for name in names])
    return seen


@dataclass
class PointRow:
    name: str  # the module's path in the network
    kind: str  # ``describe``'s
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerRow]:
    """A row per top-level layer, in the order the forward pass calls them (a network of any
    shape: its children's outputs are recorded as it runs); a row holding a downsampling point
    is marked."""
    rows: list[LayerRow] = []
    points = downsampling_points(model)

    def record(name: str, layer: nn.Module, out: torch.Tensor) -> None:  # the output stays
        rows.append(LayerRow(
            name=name, kind=type(layer).__name__, output_shape=tuple(out.shape[1:]),
            params=count_params(layer),
            downsample=any(p == name or p.startswith(name + ".") for p in points)))

    run_once(model, input_shape, [layer.register_forward_hook(
        lambda layer, args, out, name=name: record(name, layer, out))
        for name, layer in model.named_children()])
    return rows


def point_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[PointRow]:
    """A row per downsampling point the forward pass reaches, in module order."""
    names = downsampling_points(model)
    shapes = io_shapes(model, names, input_shape)
    return [PointRow(name, describe(model.get_submodule(name)), *shapes[name])
            for name in names if name in shapes]


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs for one image (convolutions, matmuls and FFTs), by
    ``torch.utils.flop_counter``, which counts no FFT itself (``internals``)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=fft_flop_formulas())
    with torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return int(counter.get_total_flops())


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    points: list[PointRow]
    input_shape: tuple[int, ...]
    params_total: int
    params_trainable: int
    params_downsample: int
    flops_forward: int

    @classmethod
    def of(cls, model: nn.Module, input_shape: tuple[int, ...]) -> ModelSummary:
        return cls(
            rows=layer_table(model, input_shape),
            points=point_table(model, input_shape),
            input_shape=tuple(input_shape),
            params_total=count_params(model),
            params_trainable=count_params(model, trainable_only=True),
            params_downsample=downsample_params(model),
            flops_forward=forward_flops(model, input_shape),
        )

    def format(self) -> str:
        header = ("layer", "type", "output shape", "params")
        body = [
            (r.name + (" *" if r.downsample else ""), r.kind, _fmt(r.output_shape), f"{r.params:,}")
            for r in self.rows
        ]
        table = [header, ("input", "", _fmt(self.input_shape), ""), *body]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = [
            "  ".join(
                cell.rjust(w) if i == 3 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths))
            ).rstrip()
            for row in table
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(
            f"params: {self.params_total:,} total, {self.params_trainable:,} trainable, "
            f"{self.params_downsample:,} in the operator's layers"
        )
        lines.append(f"forward FLOPs per image: {self.flops_forward:,} "
                     f"({self.flops_forward / 1e6:.2f} MFLOP; conv, linear and FFT)")
        lines.append(f"downsampling points (*): {len(self.points)}")
        points = [(p.name, p.kind, f"{_fmt(p.input_shape)} → {_fmt(p.output_shape)}")
                  for p in self.points]
        widths = [max((len(row[i]) for row in points), default=0) for i in range(3)]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                  for row in points]
        return "\n".join(lines)
