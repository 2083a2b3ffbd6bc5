"""Shift robustness of a trained net (Zhang 2019): seed 000's "not translation invariant", measured.

Each test image is shifted twice by offsets drawn from [-k, k]² (the same in every run) and
classified both times: per fill mode, top-1 accuracy and ``consistency`` (both draws agree).
``regime`` says whether a net can score 1.0 under ``circular`` shifts at all (APS's regime).
"""

from __future__ import annotations

import torch
from torch import nn

from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, ShiftConfig, ShiftFill
from downsample_study.nets.shapes import downsampling_points

TOLERANCE = 1e-4  # of the largest logit: what summing a global pool in another order moves


def shift_images(
    x: torch.Tensor, offsets: torch.Tensor, mode: str, fill: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Shift each image of ``x`` (N×C×H×W) by ``offsets[i] = (dy, dx)``: ``out[i, :, y, x] =
    x[i, :, y − dy, x − dx]``, wrapping (``circular``) or taking ``fill`` (``zero``: a number or
    a 1×C×1×1 tensor, raw pixel 0 after normalisation) outside the frame."""
    mode = ShiftFill(mode)
    n, c, h, w = x.shape
    offsets = offsets.to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] - offsets[:, :1]  # N×H
    cols = torch.arange(w, device=x.device)[None, :] - offsets[:, 1:]  # N×W
    index = (
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        (rows % h)[:, None, :, None],
        (cols % w)[:, None, None, :],
    )
    shifted = x[index]
    if mode == ShiftFill.circular:
        return shifted
    row_inside = ((rows >= 0) & (rows < h))[:, None, :, None]
    col_inside = ((cols >= 0) & (cols < w))[:, None, None, :]
    inside = row_inside & col_inside
    return torch.where(inside, shifted, torch.as_tensor(fill, dtype=x.dtype, device=x.device))


def random_offsets(n: int, max_shift: int, samples: int, seed: int) -> torch.Tensor:
    """``samples`` pairs of independent offsets per image: a samples×2×N×2 integer tensor."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-max_shift, max_shift + 1, (samples, 2, n, 2), generator=generator)


def total_stride(net: nn.Module, x: torch.Tensor) -> int | None:
    """How many pixels of ``x`` one pixel of ``net``'s smallest downsampled map above 1×1
    stands for (1 without a downsampling point); None where the maps do not halve evenly
    (28 → 14 → 7 → 4)."""
    sides: list[int] = []
    hooks = [net.get_submodule(name).register_forward_hook(
        lambda module, args, out: sides.append(out.shape[-1]) and None)
        for name in downsampling_points(net)]
    try:
        net(x)
    finally:
        for hook in hooks:
            hook.remove()
    side = x.shape[-1]
    # a 1×1 map's stride is the whole image: a shift by it changes nothing
    smallest = min((s for s in sides if s > 1), default=side)
    stride = side // smallest
    even = side % smallest == 0 and x.shape[-2] % smallest == 0 and stride & (stride - 1) == 0
    return stride if even else None


def circular_regime(net: nn.Module, x: torch.Tensor) -> dict:
    """Whether ``net`` (in eval mode) is in APS's regime (Chaman & Dokmanić 2021) on images
    ``x``: its logits unchanged when ``x`` is shifted circularly by its total stride along
    either axis, as circular padding and a global pooling head make them. Only there can an
    operator make a network invariant to every circular shift."""
    stride = total_stride(net, x)
    invariant = False
    if stride is not None:
        logits = net(x)
        tolerance = TOLERANCE * max(logits.abs().max().item(), 1.0)
        invariant = all(torch.allclose(net(torch.roll(x, stride, dims=dim)), logits, rtol=0,
                                       atol=tolerance) for dim in (-2, -1))
    return {"stride": stride, "invariant": invariant}


@EVALUATIONS.register("shift")
@torch.inference_mode()
def shift_robustness(net: nn.Module, data: EvaluationData, cfg: ShiftConfig) -> Measured:
    """Accuracy and consistency under random shifts, per ``cfg.modes``, of the test split."""
    batches = data.batches()
    offsets = random_offsets(len(data.test), cfg.max, cfg.samples, cfg.seed)
    # counts stay on the device: one synchronisation at the end, not one per batch
    correct = {mode: torch.zeros((), dtype=torch.long, device=data.device) for mode in cfg.modes}
    agree = {mode: torch.zeros_like(count) for mode, count in correct.items()}
    start = 0
    for x, y in batches:
        part = offsets[:, :, start : start + len(y)]
        start += len(y)
        for mode in cfg.modes:
            for pair in part:
                a, b = (net(shift_images(x, draw, mode, batches.shift)).argmax(1) for draw in pair)
                correct[mode] += (a == y).sum() + (b == y).sum()
                agree[mode] += (a == b).sum()
    n = len(data.test) * cfg.samples
    measured = {str(mode): {"acc_top1": correct[mode].item() / (2 * n),
                            "consistency": agree[mode].item() / n} for mode in cfg.modes}
    return Measured(
        summary={f"{'acc' if key == 'acc_top1' else key}_{mode}": value
                 for mode, values in measured.items() for key, value in values.items()},
        details={"max": cfg.max, "samples": cfg.samples, "seed": cfg.seed,
                 "regime": circular_regime(net, next(iter(batches))[0]), **measured})
