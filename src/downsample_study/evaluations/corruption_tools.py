"""What MNIST-C's and CIFAR-10-C's corruptions share, on batches: blurs, noise, fog, zoom.

The references call skimage, OpenCV and ImageMagick one image at a time; these are the same
operations on N×H×W (grey) or N×H×W×C (RGB) floats in [0, 1], with numpy, scipy and PIL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

# (images, the severity's strength, generator) -> corrupted images
Apply = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One corruption: ``apply`` with ``strengths[s − 1]`` at severity s (1 to 5)."""

    apply: Apply
    strengths: tuple


def gaussian(x: np.ndarray, sigma: float, axes: tuple[int, ...] = (1, 2),
             mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """``skimage.filters.gaussian`` along ``axes`` only (the batch and channels untouched)."""
    return ndimage.gaussian_filter(x, [sigma if axis in axes else 0 for axis in range(x.ndim)],
                                   mode=mode, truncate=truncate)


def shot_noise(x: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise: each pixel's value, in units of 1/``photons``, drawn as a photon count."""
    return np.clip(rng.poisson(x * photons) / photons, 0, 1)


def salt_and_pepper(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``skimage.util.random_noise(mode="s&p")``: a share ``amount`` of the values set to 0 or
    1, each with probability 1/2."""
    flipped = rng.random(x.shape) < amount
    salted = rng.random(x.shape) < 0.5
    return np.where(flipped, salted.astype(x.dtype), x)


def motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's ``MotionBlurImage`` (the references reach it through wand, which needs the
    ImageMagick library; neither scipy nor torch has it): a one-sided Gaussian line of
    2⌈radius⌉ + 1 taps along each image's angle (degrees), the frame's edge repeated."""
    width = 2 * math.ceil(radius) + 1
    taps = np.arange(width)
    kernel = np.exp(-(taps**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    radians = np.deg2rad(angles)[:, None]
    # ImageMagick's offsets: each tap rounded half down, as ceil(v − 0.5)
    step = (width * np.cos(radians), width * np.sin(radians))
    length = np.hypot(*step)
    cols, rows = (np.ceil(taps * s / length - 0.5).astype(int) for s in step)  # N×width
    n, h, w = x.shape[:3]
    batch = np.arange(n)[:, None, None]
    blurred = np.zeros_like(x)
    for tap in range(width):
        at_rows = np.clip(np.arange(h) + rows[:, tap, None], 0, h - 1)[:, :, None]
        at_cols = np.clip(np.arange(w) + cols[:, tap, None], 0, w - 1)[:, None, :]
        blurred += kernel[tap] * x[batch, at_rows, at_cols]
    return blurred


def plasma_fractal(n: int, size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """The references' diamond-square height map (N×size×size, each in [0, 1]); ``size`` a
    power of two; the rolls wrap, so the map tiles. Same draws, same sums as theirs."""
    maps = np.empty((n, size, size))
    maps[:, 0, 0] = 0
    step, wibble = size, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares += np.roll(squares, -1, axis=2)
        maps[:, half:size:step, half:size:step] = wibbled_mean(squares)
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        across = ((centres + np.roll(centres, 1, axis=1))
                  + (corners + np.roll(corners, -1, axis=2)))
        maps[:, 0:size:step, half:size:step] = wibbled_mean(across)
        down = ((centres + np.roll(centres, 1, axis=2))
                + (corners + np.roll(corners, -1, axis=1)))
        maps[:, half:size:step, 0:size:step] = wibbled_mean(down)
        step //= 2
        wibble /= decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def linear_resize(n_in: int, n_out: int) -> np.ndarray:
    """The n_out×n_in matrix of scipy's order-1 ``zoom`` along one axis (end samples aligned):
    as a matrix product it leaves the batch and channel axes alone, where ``zoom`` would
    interpolate across them too, four times the work for the same numbers."""
    at = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
    low = np.minimum(at.astype(int), n_in - 2)
    matrix = np.zeros((n_out, n_in))
    matrix[np.arange(n_out), low] = 1 - (at - low)
    matrix[np.arange(n_out), low + 1] = at - low
    return matrix


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The references' ``clipped_zoom``: the centre 1/``factor`` of each image, zoomed back to
    the full size (bilinear)."""
    side = x.shape[1]
    crop = math.ceil(side / factor)
    top = (side - crop) // 2
    resize = linear_resize(crop, round(crop * factor))
    zoomed = np.einsum("ai,nij...,bj->nab...", resize, x[:, top : top + crop, top : top + crop],
                       resize, optimize=True)
    trim = (zoomed.shape[1] - side) // 2
    return zoomed[:, trim : trim + side, trim : trim + side]


def through_pil(x: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """Each image as the 8-bit PIL image the references start from, changed, back in [0, 1]."""
    images = np.round(x * 255).astype(np.uint8)
    return np.stack([np.asarray(change(Image.fromarray(image))) for image in images]) / 255
