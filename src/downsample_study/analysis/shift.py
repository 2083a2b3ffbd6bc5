"""Shift robustness of a trained net (Zhang 2019): seed 000's "not translation invariant", measured.

Each test image is shifted twice by offsets drawn from [-k, k]² (the same in every run) and
classified both times: per fill mode, top-1 accuracy and ``consistency`` (both draws agree).
``circular`` loses nothing, so an exactly shift-invariant net scores 1.0 there.
"""

from __future__ import annotations

import torch
from torch import nn

from downsample_study.analysis.evaluation import EvaluationConfig, ShiftFill
from downsample_study.data.batches import TensorBatches


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


@torch.inference_mode()
def shift_robustness(net: nn.Module, batches: TensorBatches, cfg: EvaluationConfig) -> dict:
    """Accuracy and consistency under random shifts, per ``cfg.shift_modes``, of the unshuffled
    test ``batches``; in eval mode, on the split's device (the net is moved there)."""
    test = batches.split
    was_training = net.training
    net.eval().to(test.images.device)
    offsets = random_offsets(len(test), cfg.shift_max, cfg.shift_samples, cfg.shift_seed)
    # counts stay on the device: one synchronisation at the end, not one per batch
    correct = {mode: torch.zeros((), dtype=torch.long, device=test.images.device)
               for mode in cfg.shift_modes}
    agree = {mode: torch.zeros_like(count) for mode, count in correct.items()}
    start = 0
    for x, y in batches:
        part = offsets[:, :, start : start + len(y)]
        start += len(y)
        for mode in cfg.shift_modes:
            for pair in part:
                a, b = (net(shift_images(x, draw, mode, batches.shift)).argmax(1) for draw in pair)
                correct[mode] += (a == y).sum() + (b == y).sum()
                agree[mode] += (a == b).sum()
    net.train(was_training)
    n = len(test) * cfg.shift_samples
    return {
        "max_shift": cfg.shift_max,
        "samples": cfg.shift_samples,
        "seed": cfg.shift_seed,
        **{
            str(mode): {
                "acc_top1": correct[mode].item() / (2 * n),
                "consistency": agree[mode].item() / n,
            }
            for mode in cfg.shift_modes
        },
    }


def shift_metrics(shift: dict) -> dict[str, float]:
    """The logged names: ``test/shift_acc_zero``, ``test/shift_consistency_circular``, ..."""
    return {
        f"test/shift_{'acc' if key == 'acc_top1' else key}_{mode}": value
        for mode in map(str, ShiftFill)
        if mode in shift
        for key, value in shift[mode].items()
    }
