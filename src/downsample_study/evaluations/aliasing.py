"""Aliasing at each downsampling point: the share of its input's energy the output cannot hold.

A point that keeps every ``s``-th sample can represent frequencies up to 1/(2s) cycles per pixel;
energy above that folds onto lower frequencies (Zhang 2019; Grabinski et al. 2022). Measured on
the trained net and, where it can be built, on the same net as initialised.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from torch import nn

from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, AliasingConfig
from downsample_study.nets.shapes import downsampling_points


def energy_spectrum(x: torch.Tensor) -> torch.Tensor:
    """|FFT2|² of each map of ``x`` (N×C×H×W), its own mean removed, summed over images and
    channels: an H×W float64 tensor in ``torch.fft.fftfreq`` order."""
    # the mean (frequency 0) never aliases; kept, a map's offset (a bias, ReLU's positive mean)
    # would dilute the share, and trained and initialised nets would differ by offsets, not spectra
    centred = x.double() - x.double().mean(dim=(-2, -1), keepdim=True)
    return torch.fft.fft2(centred).abs().square().sum(dim=(0, 1))


def share_above_nyquist(energy: torch.Tensor, stride: tuple[float, float]) -> float:
    """The share of ``energy`` (H×W, ``energy_spectrum``'s) at |f| > 1/(2·stride) cycles per
    pixel on either axis: what subsampling by ``stride`` (rows, columns) aliases. 0 for no
    energy (a constant map)."""
    height, width = energy.shape
    rows = torch.fft.fftfreq(height, device=energy.device).abs() > 1 / (2 * stride[0])
    cols = torch.fft.fftfreq(width, device=energy.device).abs() > 1 / (2 * stride[1])
    above = rows[:, None] | cols[None, :]
    total = energy.sum().item()
    return energy[above].sum().item() / total if total > 0 else 0.0


class PointSpectra:
    """Forward hooks on ``net``'s downsampling points: each point's input energy spectrum summed
    over the batches run while the hooks are on, and its stride (input size / output size)."""

    def __init__(self, net: nn.Module):
        self.energy: dict[str, torch.Tensor] = {}
        self.stride: dict[str, tuple[float, float]] = {}
        self.names = downsampling_points(net)
        self.handles = [net.get_submodule(name).register_forward_hook(self._hook(name))
                        for name in self.names]

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            x = args[0]
            energy = energy_spectrum(x)
            self.energy[name] = self.energy[name] + energy if name in self.energy else energy
            self.stride[name] = (x.shape[-2] / out.shape[-2], x.shape[-1] / out.shape[-1])
        return record

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def shares(self) -> dict[str, float]:
        """The aliased share per point the forward passes reached, in module order."""
        return {name: share_above_nyquist(self.energy[name], self.stride[name])
                for name in self.names if name in self.energy}


@torch.inference_mode()
def point_shares(net: nn.Module, data: EvaluationData, images: int
                 ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """The aliased share and the stride of each downsampling point of ``net`` on the first
    ``images`` test images, in eval mode; the net's mode and hooks are left as found."""
    was_training = net.training
    spectra = PointSpectra(net)
    try:
        net.eval()
        for x, _ in data.batches(data.first(images)):
            net(x)
    finally:
        spectra.remove()
        net.train(was_training)
    return spectra.shares(), spectra.stride


def _stride(stride: tuple[float, float]) -> float | list[float]:
    return stride[0] if stride[0] == stride[1] else list(stride)


def aliasing_figure(points: list[dict], title: str) -> Figure:
    """A bar per point: the trained net's share, beside the initialised net's where measured."""
    fig = Figure(figsize=(1.2 + 1.1 * len(points), 3.2), layout="constrained")
    ax = fig.subplots()
    bars = {"trained": [p["trained"] for p in points]}
    if any(p["initial"] is not None for p in points):
        bars["initial"] = [p["initial"] or 0.0 for p in points]
    width = 0.8 / len(bars)
    for i, (label, heights) in enumerate(bars.items()):
        offset = (i - (len(bars) - 1) / 2) * width
        ax.bar([at + offset for at in range(len(points))], heights, width, label=label)
    strides = [p["stride"] if isinstance(p["stride"], list) else [p["stride"]] for p in points]
    ax.set_xticks(range(len(points)), [f"{p['name']}\nstride {'×'.join(f'{s:g}' for s in st)}"
                                       for p, st in zip(points, strides)], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("input energy above Nyquist")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


@EVALUATIONS.register("aliasing")
def aliasing(net: nn.Module, data: EvaluationData, cfg: AliasingConfig) -> Measured:
    """Summary ``trained`` (and ``initial``): the mean aliased share over the points."""
    trained, strides = point_shares(net, data, cfg.images)
    initial: dict[str, float] | None = None
    if cfg.at_init and data.initial is not None:
        initial, _ = point_shares(data.initial().to(data.device), data, cfg.images)
    points = [{"name": name, "stride": _stride(strides[name]), "trained": share,
               "initial": None if initial is None else initial.get(name)}
              for name, share in trained.items()]
    summary = {"trained": sum(trained.values()) / len(trained)} if trained else {}
    if initial:
        summary["initial"] = sum(initial.values()) / len(initial)
    figures = {"spectra": aliasing_figure(points, data.title)} if points else {}
    details = {"points": points, "images": len(data.first(cfg.images))}
    return Measured(summary=summary, details=details, figures=figures)
