"""CIFAR-10-C's corruptions (Hendrycks & Dietterich 2019) on RGB batches (N×H×W×3 in [0, 1]).

Ported from github.com/hendrycks/robustness (Apache-2.0), ``ImageNet-C/create_c/
make_cifar_c.py``, with its five severities, without its skimage, OpenCV and wand calls. Frost
is left out: it blends in photographs of frost that the reference ships as image files.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from downsample_study.evaluations import corruption_tools as tools
from downsample_study.evaluations.corruption_tools import Corruption, gaussian

GREY = np.array([0.299, 0.587, 0.114])  # OpenCV's RGB → grey


def gaussian_noise(x, spread, rng):
    return np.clip(x + rng.normal(size=x.shape, scale=spread), 0, 1)


def shot_noise(x, photons, rng):
    return tools.shot_noise(x, photons, rng)


def impulse_noise(x, amount, rng):
    return tools.salt_and_pepper(x, amount, rng)


def disk(radius, alias_blur):
    """The reference's anti-aliased disk: a disk of ``radius`` on a 17×17 grid, normalised and
    blurred by OpenCV's 3×3 Gaussian (reflect-101 border); cut to where it is not zero."""
    side = np.arange(-8, 9)
    cols, rows = np.meshgrid(side, side)
    aliased = (cols**2 + rows**2 <= radius**2).astype(float)
    aliased /= aliased.sum()
    taps = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))
    taps /= taps.sum()
    kernel = ndimage.correlate(aliased, np.outer(taps, taps), mode="mirror")
    reach = np.abs(side[kernel.any(0)]).max()
    return kernel[8 - reach : 9 + reach, 8 - reach : 9 + reach]


def defocus_blur(x, strength, rng):
    return ndimage.correlate(x, disk(*strength)[None, :, :, None], mode="mirror")


def glass_blur(x, strength, rng):
    """Blur, move pixels locally, blur again. The reference swaps two pixels with
    ``a[p], a[q] = a[q], a[p]`` on views of an H×W×3 array: p takes q's value and q keeps its
    own, so each pixel here only takes its neighbour's value, as in CIFAR-10-C."""
    sigma, delta, iterations = strength
    pixels = np.floor(gaussian(x, sigma) * 255)  # the reference's np.uint8
    n, size = len(x), x.shape[1]
    batch = np.arange(n)
    for _ in range(iterations):
        for h in range(size - delta, delta, -1):
            for w in range(size - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(n, 2)).T
                pixels[batch, h, w] = pixels[batch, h + dy, w + dx]
    return gaussian(pixels / 255, sigma)


def motion_blur(x, strength, rng):
    radius, sigma = strength
    return tools.motion_blur(x, radius, sigma, rng.uniform(-45, 45, len(x)))


def zoom_blur(x, factors, rng):
    """The mean of the image and its zooms by each of ``factors`` about the centre."""
    total = np.zeros_like(x)
    for factor in factors:
        total += tools.clipped_zoom(x, factor)
    return (x + total) / (len(factors) + 1)


def snow(x, strength, rng):
    """Flakes: thresholded noise, zoomed, motion-blurred downwards, added twice (once turned
    half a turn) to an image brightened towards its grey."""
    mean, spread, zoom, threshold, radius, sigma, blend = strength
    n, h, w, _ = x.shape
    flakes = tools.clipped_zoom(rng.normal(mean, spread, (n, h, w)), zoom)
    flakes[flakes < threshold] = 0
    flakes = np.floor(np.clip(flakes, 0, 1) * 255) / 255  # the reference's 8-bit image
    flakes = tools.motion_blur(flakes, radius, sigma, rng.uniform(-135, -45, n))[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, (x @ GREY)[..., None] * 1.5 + 0.5)
    return np.clip(x + flakes + np.rot90(flakes, 2, axes=(1, 2)), 0, 1)


def fog(x, strength, rng):
    thickness, decay = strength
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    haze = tools.plasma_fractal(len(x), 32, decay, rng)[:, : x.shape[1], : x.shape[2], None]
    return np.clip((x + thickness * haze) * peak / (peak + thickness), 0, 1)


def brightness(x, lift, rng):
    """skimage's RGB → HSV, value + lift (at most 1), and back, in closed form: hue and
    saturation stay, so each pixel scales with its value (its largest channel); a black pixel
    has no hue and becomes grey at ``lift``."""
    value = x.max(axis=-1, keepdims=True)
    lifted = np.minimum(value + lift, 1)
    gain = np.divide(lifted, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * gain, lifted)


def contrast(x, factor, rng):
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * factor + means, 0, 1)


def affine_jitter(x, jitter, rng):
    """OpenCV's ``warpAffine`` (bilinear, reflect-101 border) by the affine map that moves
    three fixed points of each image by up to ``jitter`` pixels."""
    n, size = len(x), x.shape[1]
    centre, third = size // 2, size // 3
    fixed = np.array([[centre + third] * 2, [centre + third, centre - third], [centre - third] * 2],
                     dtype=float)
    moved = fixed + rng.uniform(-jitter, jitter, size=(n, 3, 2))
    # the map back: from each moved point (x = col, y = row) to its fixed one
    back = np.linalg.solve(np.concatenate([moved, np.ones((n, 3, 1))], 2), fixed[None])
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    grid = np.stack([cols, rows, np.ones_like(cols)], -1)  # H×W×3
    source = grid @ back[:, None]  # N×H×W×2: (col, row)
    return sample(x, source[..., 1], source[..., 0], "mirror")


def sample(x, rows, cols, mode):
    """Each image's channels read (bilinear) at its own rows and cols (N×H×W); image by image
    and channel by channel, where one call on the batch would interpolate across those too."""
    return np.stack([np.stack([ndimage.map_coordinates(channel, [r, c], order=1, mode=mode)
                               for channel in np.moveaxis(image, -1, 0)], -1)
                     for image, r, c in zip(x, rows, cols)])


def elastic_transform(x, strength, rng):
    """A small random affine warp, then each pixel moved by smoothed noise."""
    alpha, sigma, jitter = strength
    x = affine_jitter(x, jitter, rng)
    n, size = len(x), x.shape[1]
    dx, dy = (gaussian(rng.uniform(-1, 1, size=(n, size, size)), sigma, mode="reflect",
                       truncate=3) * alpha for _ in range(2))
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    return np.clip(sample(x, rows + dy, cols + dx, "reflect"), 0, 1)


def pixelate(x, factor, rng):
    size = x.shape[1]
    small = int(size * factor)
    return tools.through_pil(x, lambda image: image.resize((small, small), Image.BOX).resize(
        (size, size), Image.BOX))


def jpeg_compression(x, quality, rng):
    def compress(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer)

    return tools.through_pil(x, compress)


def zooms(top: float, step: float = 0.01) -> np.ndarray:
    return np.arange(1, top, step)  # the reference's ranges, their float ends included


SIZE = 32  # CIFAR-10-C's elastic strengths are in units of the image's side
CORRUPTIONS = {function.__name__: Corruption(function, strengths) for function, strengths in (
    (gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),
    (shot_noise, (500, 250, 100, 75, 50)),
    (impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07)),
    (defocus_blur, ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),
    (glass_blur, ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))),
    (motion_blur, ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    (zoom_blur, tuple(zooms(top) for top in (1.06, 1.11, 1.16, 1.21, 1.26))),
    (snow, ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))),
    (fog, ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),
    (brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),
    (contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),
    (elastic_transform, tuple((SIZE * a, SIZE * s, SIZE * j) for a, s, j in (
        (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03)))),
    (pixelate, (0.95, 0.9, 0.85, 0.75, 0.65)),
    (jpeg_compression, (80, 65, 58, 50, 40)),
)}
