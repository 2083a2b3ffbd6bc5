"""Polyphase operators: keep the phase of the subsampling that the input chooses.

APS chooses by the largest norm, LPS by a learned logit per phase, TIPS mixes the phases with
learned per-channel weights and trains them towards one phase with loss terms of its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.nets.auxiliary import AuxiliaryLoss
from downsample_study.nets.downsample_base import APSPool
from downsample_study.nets.downsample_configs import APSConfig
from downsample_study.nets.later_downsample_configs import LPSConfig, TIPSConfig, TIPSShift
from downsample_study.nets.layers import PolyphaseSampling
from downsample_study.nets.operators.core import added, register_downsample
from downsample_study.nets.points import Downsample, DownsamplePoint


class PhaseLogits(nn.Module):
    """LPS's logits network (its ``LPSLogitLayersV2``): 3×3 conv, ReLU, 3×3 conv on each
    polyphase component, the same weights for all four, averaged to one logit per phase."""

    def __init__(self, channels: int, hidden: int, padding_mode: str = "circular"):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1, padding_mode=padding_mode)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode=padding_mode)

    def forward(self, phases: torch.Tensor) -> torch.Tensor:
        """``phases`` N × P × C × h × w to logits N × P."""
        n, p = phases.shape[:2]
        out = self.conv2(self.relu(self.conv1(phases.flatten(0, 1))))
        return out.mean(dim=(1, 2, 3)).view(n, p)


class LearnedPolyphaseSampling(PolyphaseSampling):
    """Learnable polyphase sampling (Rojas-Gómez et al. 2022): keep the phase with the largest
    learned logit (evaluation), or a Gumbel-softmax draw's mix of the four (training).

    The logits network sees each component with circular padding, so a circular shift of the
    input permutes the logits as it permutes the components: exact invariance, as APS's. An
    odd side is zero-padded by one first (ceil(N / 2)), as the reference code pads. As a
    ``PolyphaseSampling`` it hands its choice (the draw in training) to a residual shortcut's.
    """

    def __init__(self, channels: int, hidden: int | None = None, tau: float = 1.0,
                 padding_mode: str = "circular", chooses: bool = True):
        """``chooses``: False for a residual shortcut's layer, which takes its body's choice
        (the reference's ``use_get_logits=False``) and has no logits network; run outside its
        block, it keeps the phase of largest norm, as APS."""
        super().__init__()
        self.logits = PhaseLogits(channels, hidden or channels, padding_mode) if chooses else None
        self.tau = tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = F.pad(x, (0, w % 2, 0, h % 2))
        phases = self.unshuffle(x).unflatten(1, (c, 4)).transpose(1, 2)  # N, 4, C, H/2, W/2
        choice = self.given
        if choice is None and self.logits is None:  # a shortcut's, run alone (a shape trace)
            choice = phases.pow(2).sum(dim=(2, 3, 4)).argmax(dim=1)  # as APS chooses
        elif choice is None:
            logits = self.logits(phases)
            choice = (F.gumbel_softmax(logits, tau=self.tau) if self.training
                      else logits.argmax(dim=1))
        self.chosen = choice
        if choice.dim() == 1:
            return phases[torch.arange(n, device=x.device), choice]
        return (phases * choice[:, :, None, None, None]).sum(dim=1)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


# TIPS's phase order, (row, column) offsets: the reference stacks its components so
TIPS_PHASES = ((0, 0), (1, 0), (0, 1), (1, 1))


class TranslationInvariantPolyphaseSampling(AuxiliaryLoss):
    """Translation-invariant polyphase sampling (Saha & Gokhale 2025): a per-channel softmax
    mix of the four polyphase components, its weights from the 2×2 average of
    ψ(x) = ReLU(depthwise conv(x)) and a depthwise 1×1 conv.

    In training it adds (fm_weight · L_FM + alpha · L_undo) / (1 − alpha): L_FM = mean of
    1 − ‖weights‖₂ (towards one phase per channel), L_undo = MSE(ψ(x), x shifted by a random
    offset in [−max_shift, max_shift]²); the reference weights the cross-entropy 1 − alpha,
    here it keeps 1. An odd side is reflect-padded by one at its start, as the reference does.
    """

    def __init__(self, channels: int, kernel_size: int = 3, alpha: float = 0.35,
                 fm_weight: float = 1.0, max_shift: int = 8, wrap: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                               groups=channels, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.conv2 = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.alpha, self.fm_weight = alpha, fm_weight
        self.max_shift, self.wrap = max_shift, wrap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:  # a single row or column cannot be reflected: replicated
            x = F.pad(x, (w % 2, 0, h % 2, 0), mode="reflect" if min(h, w) > 1 else "replicate")
        psi = self.relu(self.conv1(x))
        weights = self.conv2(self.pool(psi)).flatten(2).softmax(dim=-1)  # N, C, 4
        phases = torch.stack([x[..., i::2, j::2] for i, j in TIPS_PHASES], dim=2)
        out = (weights[..., None, None] * phases).sum(dim=2)
        if self.training:
            fm = (1 - torch.linalg.vector_norm(weights, dim=-1)).mean()
            undo = F.mse_loss(psi, self.shifted(x))
            self.loss = (self.fm_weight * fm + self.alpha * undo) / (1 - self.alpha)
        return out

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rolled by a random (dy, dx) from torch's generator; unless ``wrap``, what
        wraps around is zero."""
        dy, dx = (int(torch.randint(-self.max_shift, self.max_shift + 1, ())) for _ in range(2))
        moved = torch.roll(x, (dy, dx), dims=(-2, -1))
        if self.wrap:
            return moved
        h, w = x.shape[-2:]
        rows = torch.arange(h, device=x.device) - dy
        cols = torch.arange(w, device=x.device) - dx
        inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
        return torch.where(inside, moved, torch.zeros((), dtype=x.dtype, device=x.device))

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, fm_weight={self.fm_weight}, max_shift={self.max_shift}, "
                f"wrap={self.wrap}")


@register_downsample("aps")
def aps(cfg: APSConfig, point: DownsamplePoint) -> Downsample:
    """Adaptive polyphase sampling (Chaman & Dokmanić, CVPR 2021)."""
    if cfg.pool == APSPool.none:
        return added(PolyphaseSampling())
    # circular padding keeps the stride-1 max pool equivariant to circular shifts
    return added(nn.CircularPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, stride=1), PolyphaseSampling())


@register_downsample("lps")
def lps(cfg: LPSConfig, point: DownsamplePoint) -> Downsample:
    """Learnable polyphase sampling (Rojas-Gómez, Lim, Schwing, Do & Yeh, NeurIPS 2022)."""
    sampling = LearnedPolyphaseSampling(point.channels, cfg.hidden_channels or point.channels,
                                        cfg.gumbel_tau, cfg.logits_padding.value,
                                        chooses=not point.follows)
    if cfg.pool == APSPool.none:
        return added(sampling)
    return added(nn.CircularPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, stride=1), sampling)


@register_downsample("tips")
def tips(cfg: TIPSConfig, point: DownsamplePoint) -> Downsample:
    """Translation-invariant polyphase sampling (Saha & Gokhale, WACV 2025)."""
    return added(TranslationInvariantPolyphaseSampling(
        point.channels, cfg.kernel_size, cfg.alpha, cfg.fm_weight, cfg.max_shift,
        wrap=cfg.shift == TIPSShift.circular))
