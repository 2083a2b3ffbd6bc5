"""Small images for the corruption tests that look like the datasets' own: strokes on black
(MNIST, 28×28 grey) and shaded shapes on a gradient (CIFAR-10, 32×32 RGB), uint8 N×C×H×W."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def digits(n: int, seed: int = 0, size: int = 28) -> torch.Tensor:
    """White strokes (an arc and a bar, 2–3 px wide) on black, like handwritten digits."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        image = Image.new("L", (size, size))
        draw = ImageDraw.Draw(image)
        left, top = rng.integers(4, 10, 2)
        draw.ellipse((left, top, left + 12, top + 14), outline=255, width=int(rng.integers(2, 4)))
        x0, x1 = rng.integers(6, 22, 2)
        draw.line((x0, 5, x1, 23), fill=int(rng.integers(180, 256)), width=2)
        images.append(np.asarray(image))
    return torch.from_numpy(np.stack(images))[:, None]


def photos(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """A colour gradient with a shaded disc and a box: mid-range values, edges and smooth parts."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)
    images = []
    for _ in range(n):
        low, high = rng.uniform(30, 120, 3), rng.uniform(130, 230, 3)
        gradient = low + (high - low) * (ramp[:, None, None] + ramp[None, :, None]) / 2
        image = Image.fromarray(gradient.astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        cx, cy = rng.integers(8, 24, 2)
        draw.ellipse((cx - 6, cy - 6, cx + 6, cy + 6), fill=tuple(rng.integers(0, 256, 3)))
        x0, y0 = rng.integers(2, 20, 2)
        draw.rectangle((x0, y0, x0 + 9, y0 + 7), fill=tuple(rng.integers(0, 256, 3)))
        images.append(np.asarray(image))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
