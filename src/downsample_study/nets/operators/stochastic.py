"""Stochastic pooling: what a window keeps is drawn in training, a fixed rule in evaluation.

The draws come from torch's global generator, so in a pack each member's copy draws from its
member's generator (``nets/packed.py::PerMember``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.internals import fractional_max_pool_fixed
from downsample_study.nets.later_downsample_configs import (
    FractionalPoolConfig,
    StochasticPoolConfig,
)
from downsample_study.nets.operators.core import added, register_downsample
from downsample_study.nets.operators.importance import pool_windows
from downsample_study.nets.points import Downsample, DownsamplePoint


class StochasticPool(nn.Module):
    """Stochastic pooling (Zeiler & Fergus, ICLR 2013), the paper's definition.

    In each window pᵢ = aᵢ / Σⱼ aⱼ. Training keeps one value, drawn with probability pᵢ (a
    window of zeros gives 0); evaluation keeps the probabilistic weighting Σ pᵢ aᵢ. The paper
    takes ReLU outputs: a negative input counts as 0 here, so the layer pools relu(x). An
    overhanging window (ceil mode) draws among the values it holds.
    """

    def __init__(self, kernel_size: int = 2, stride: int = 2, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.ceil_mode = kernel_size, stride, ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activations = pool_windows(x.clamp(min=0), self.kernel_size, self.stride,
                                   self.ceil_mode, fill=0.0)
        total = activations.sum(dim=-1, keepdim=True)
        probabilities = activations / total.where(total > 0, 1.0)
        if not self.training:
            return (probabilities * activations).sum(dim=-1)
        # a window of zeros draws among its zeros alike (multinomial needs a positive sum);
        # contiguous, as torch draws in memory order: the same draws in any memory layout
        drawable = probabilities.where(total > 0, 1.0).flatten(0, -2).contiguous()
        chosen = torch.multinomial(drawable, 1)
        return activations.flatten(0, -2).gather(1, chosen).view(activations.shape[:-1])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class FractionalHalvingPool(nn.Module):
    """Fractional max pooling (Graham 2014) at a ratio of exactly 1/2: torch's
    ``fractional_max_pool2d``, its output size computed from each input.

    Training draws pseudo-random regions from torch's global generator. Evaluation holds them
    fixed (u = ``eval_sample`` for every sample and channel): one member of what Graham calls
    the ensemble of region configurations, a single deterministic test pass (his averaging
    over repeated test passes is not done). Graham's ratio lies in (1, 2): at exactly 2 with
    kernel 2 an even side's regions are the regular 2×2 grid whatever the draw (torch places
    window i at ⌊2(i + u)⌋ − ⌊2u⌋ = 2i), so draws move the windows of an odd side, or of any
    side with kernel 3.
    """

    def __init__(self, kernel_size: int = 2, ceil_mode: bool = False, eval_sample: float = 0.5):
        super().__init__()
        self.kernel_size, self.ceil_mode, self.eval_sample = kernel_size, ceil_mode, eval_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out_h, out_w = ((n + 1) // 2 if self.ceil_mode else n // 2 for n in (h, w))
        # torch's op needs out + kernel - 1 <= in: a small map is padded by repeating its edge,
        # so each window's max is still the max of values in the map
        extra_h, extra_w = (max(0, out + self.kernel_size - 1 - n)
                            for out, n in ((out_h, h), (out_w, w)))
        x = F.pad(x, (0, extra_w, 0, extra_h), mode="replicate")
        if self.training:
            return F.fractional_max_pool2d(x, self.kernel_size, output_size=(out_h, out_w))
        return fractional_max_pool_fixed(x, self.kernel_size, (out_h, out_w), self.eval_sample)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, ratio=1/2, ceil_mode={self.ceil_mode}, "
                f"eval_sample={self.eval_sample}")


@register_downsample("stochasticpool")
def stochasticpool(cfg: StochasticPoolConfig, point: DownsamplePoint) -> Downsample:
    """Stochastic pooling (Zeiler & Fergus, ICLR 2013)."""
    return added(StochasticPool(cfg.kernel_size, cfg.stride, point.ceil_mode(cfg.kernel_size)))


@register_downsample("fractionalpool")
def fractionalpool(cfg: FractionalPoolConfig, point: DownsamplePoint) -> Downsample:
    """Fractional max pooling at ratio 1/2 (Graham, arXiv 2014)."""
    return added(FractionalHalvingPool(cfg.kernel_size, point.ceil_mode()))
