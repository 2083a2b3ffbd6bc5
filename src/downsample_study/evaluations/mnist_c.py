"""MNIST-C's 15 corruptions (Mu & Gilmer 2019) on grey batches (N×H×W floats in [0, 1]).

Ported from github.com/google-research/mnist-c (Apache-2.0), ``corruptions.py``, without its
skimage, OpenCV and wand calls. MNIST-C fixes one strength per corruption (its dataset); here
that strength is severity 3, with two weaker and two stronger around it (``STRENGTHS``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from downsample_study.evaluations import corruption_tools as tools
from downsample_study.evaluations.corruption_tools import Corruption, gaussian

ROWS = (1,)  # skimage's gaussian(multichannel=True) on a 2-D image blurs along the rows only
MUD = 63 / 255  # spatter's grey


def shot_noise(x, photons, rng):
    return tools.shot_noise(x, photons, rng)


def impulse_noise(x, amount, rng):
    return tools.salt_and_pepper(x, amount, rng)


def glass_blur(x, strength, rng):
    """Blur, shuffle pixels locally (each position swaps with probability 1/2), blur again;
    MNIST-C's blurs act along the rows only (``ROWS``), as its skimage call did."""
    sigma, delta, iterations = strength
    pixels = np.floor(gaussian(x, sigma, ROWS) * 255)  # the reference's np.uint8
    n, size = len(x), x.shape[1]
    for _ in range(iterations):
        for h in range(size - delta, delta, -1):
            for w in range(size - delta, delta, -1):
                chosen = np.flatnonzero(rng.choice([True, False], n))
                dx, dy = rng.integers(-delta, delta, size=(len(chosen), 2)).T
                here, there = pixels[chosen, h, w], pixels[chosen, h + dy, w + dx]
                pixels[chosen, h, w], pixels[chosen, h + dy, w + dx] = there, here
    return gaussian(pixels / 255, sigma, ROWS)


def motion_blur(x, strength, rng):
    radius, sigma = strength
    return tools.motion_blur(x, radius, sigma, rng.uniform(-45, 45, len(x)))


def affine(x, matrices, shifts=None):
    """skimage's ``warp`` (bilinear, 0 outside) with an inverse map per image: the output pixel
    (col, row) reads the input at ``matrices[i]`` about the centre, plus ``shifts[i]``."""
    n, size = len(x), x.shape[1]
    centre = (size - 1) / 2  # MNIST-C's 13.5
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    source = np.einsum("nij,jhw->nihw", matrices, np.stack([cols, rows]) - centre) + centre
    if shifts is not None:
        source += shifts[:, :, None, None]
    batch = np.broadcast_to(np.arange(n)[:, None, None], (n, size, size))
    return ndimage.map_coordinates(x, [batch, source[:, 1], source[:, 0]], order=1,
                                   mode="grid-constant", cval=0.0)


def directions(rng, shape):
    return rng.choice([-1, 1], shape)


def shear(x, angle, rng):
    a = angle * directions(rng, len(x))
    zero, one = np.zeros_like(a), np.ones_like(a)
    return affine(x, np.stack([np.stack([one, -np.sin(a)], -1),
                               np.stack([zero, np.cos(a)], -1)], 1))


def rotate(x, angle, rng):
    a = angle * directions(rng, len(x))
    return affine(x, np.stack([np.stack([np.cos(a), -np.sin(a)], -1),
                               np.stack([np.sin(a), np.cos(a)], -1)], 1))


def scale(x, factor, rng):
    return affine(x, np.broadcast_to(np.eye(2) * factor, (len(x), 2, 2)))


def translate(x, pixels, rng):
    return affine(x, np.broadcast_to(np.eye(2), (len(x), 2, 2)),
                  pixels * directions(rng, (len(x), 2)))


def brightness(x, lift, rng):
    """skimage's grey → RGB → HSV, value + lift, and back: on grey pixels, x + lift."""
    return np.clip(x + lift, 0, 1)


def fog(x, strength, rng):
    thickness, decay = strength
    peak = x.max(axis=(1, 2), keepdims=True)
    size = x.shape[1]
    haze = tools.plasma_fractal(len(x), 256, decay, rng)[:, :size, :size]
    return np.clip((x + thickness * haze) * peak / (peak + thickness), 0, 1)


def spatter(x, strength, rng):
    """Mud (MNIST-C's grey, 63/255) where smoothed noise passes a threshold."""
    mean, spread, sigma, threshold, mud_sigma = strength
    liquid = gaussian(rng.normal(mean, spread, x.shape), sigma)
    mud = gaussian((liquid > threshold).astype(float), mud_sigma)
    mud[mud < 0.8] = 0
    return np.clip(x * (1 - mud) + MUD * mud, 0, 1)


def stripe(x, _, rng):
    """The outer quarters of the columns inverted."""
    band = x.shape[2] // 4
    out = x.copy()
    out[:, :, :band] = 1 - out[:, :, :band]
    out[:, :, -band:] = 1 - out[:, :, -band:]
    return out


def line_from_points(c0, r0, c1, r1, size):
    """MNIST-C's soft line from (c0, r0) to (c1, r1), one per entry of the arrays: 1 on the line,
    log(1 − d/2.3) + 1 at d pixels above or below it, only between the end columns."""
    c0, r0, c1, r1 = (np.asarray(v, dtype=float)[:, None, None] for v in (c0, r0, c1, r1))
    grid = np.arange(size, dtype=float)
    cols, rows = grid[None, None, :], grid[None, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (r1 - r0) / (c1 - c0)
        distance = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    inside = (cols >= np.floor(c0)) & (cols < np.ceil(c1)) & (c1 != c0)
    return np.where(inside, line, 0.0)


def dotted_line(x, _, rng):
    """A line across the image from a random row to another, dashed in runs of two columns."""
    n, size = len(x), x.shape[1]
    rows = rng.integers(0, size - 1, size=(n, 2))
    line = line_from_points(np.zeros(n), rows[:, 0], np.full(n, size - 1), rows[:, 1], size)
    line[:, :, (np.arange(size) // 2) % 2 == 0] = 0
    return np.clip(x + line, 0, 1)


def zigzag_points(r0, r1, size):
    """MNIST-C's zigzag from column 2 to size − 3: teeth 2 px long and 2 px high, rotated
    from the row r0 towards r1; its last point as the reference computes it."""
    tooth = height = 2.0
    c0, c1 = 2, size - 3
    theta = np.arctan((r1 - r0) / (c1 - c0))
    length = (c1 - c0) / np.cos(theta)
    points = [(0.0, 0.0)]
    for i in range(int((length - tooth) // (2 * tooth)) + 1):
        points.append(((2 * i + 1) * tooth, (-1) ** i * height))
    whole = (2 * tooth) * (length // (2 * tooth))
    if length != whole:
        points.append((length, points[-1][1] / (2 * (length - whole))))
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cs, rs = turn @ np.array(points).T
    return cs + c0, rs + r0


def zigzag(x, _, rng):
    out = x.copy()
    size = x.shape[1]
    for image in out:
        r0 = rng.integers(0, size - 1)
        cs, rs = zigzag_points(r0, r0 + rng.integers(-5, 5), size)
        image += line_from_points(cs[:-1], rs[:-1], cs[1:], rs[1:], size).sum(0)
    return np.clip(out, 0, 1)


def sobel(x, axis):
    """``ndimage.sobel`` within each image: the smoothing across ``3 − axis`` only."""
    derivative = ndimage.correlate1d(x, [-1, 0, 1], axis, mode="reflect")
    return ndimage.correlate1d(derivative, [1, 2, 1], 3 - axis, mode="reflect")


# the four gradient sectors of skimage's non-maximum suppression, in its order: (|i| ≥ |j|,
# i and j of the same sign, the neighbours (row, col) interpolated on the plus side)
SECTORS = ((True, True, (1, 0), (1, 1)), (False, True, (0, 1), (1, 1)),
           (False, False, (0, 1), (-1, 1)), (True, False, (-1, 0), (-1, 1)))


def canny_edges(x, _, rng):
    """The image replaced by its edges: skimage's ``feature.canny`` (σ 1, thresholds 0.1 and
    0.2; scikit-image is no dependency): Gaussian smoothing corrected for the zero border,
    Sobel gradients, non-maximum suppression between interpolated neighbours, hysteresis."""
    smooth = lambda a: gaussian(a, 1.0, mode="constant")  # noqa: E731
    smoothed = smooth(x) / (smooth(np.ones_like(x)) + np.finfo(float).eps)
    i, j = sobel(smoothed, 1), sobel(smoothed, 2)
    magnitude = np.hypot(i, j)
    inner = np.zeros(x.shape, bool)
    inner[:, 1:-1, 1:-1] = True
    inner &= magnitude > 0
    padded = np.pad(magnitude, ((0, 0), (1, 1), (1, 1)))

    def at(dr, dc):
        return padded[:, 1 + dr : 1 + dr + x.shape[1], 1 + dc : 1 + dc + x.shape[2]]

    maxima = np.zeros(x.shape, bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for steep, same_sign, (r1, c1), (r2, c2) in SECTORS:
            sign = (i >= 0) & (j >= 0) if same_sign else (i <= 0) & (j >= 0)
            flipped = (i <= 0) & (j <= 0) if same_sign else (i >= 0) & (j <= 0)
            ratio = np.abs(j) / np.abs(i) if steep else np.abs(i) / np.abs(j)
            near = (np.abs(i) >= np.abs(j)) if steep else (np.abs(i) <= np.abs(j))
            here = inner & (sign | flipped) & near
            plus = at(r2, c2) * ratio + at(r1, c1) * (1 - ratio) <= magnitude
            minus = at(-r2, -c2) * ratio + at(-r1, -c1) * (1 - ratio) <= magnitude
            maxima = np.where(here, plus & minus, maxima)
    low = maxima & (magnitude >= 0.1)
    within_image = np.zeros((3, 3, 3), bool)
    within_image[1] = True
    labels, count = ndimage.label(low, within_image)
    strong = np.zeros(count + 1, bool)
    strong[labels[maxima & (magnitude >= 0.2)]] = True
    strong[0] = False
    return strong[labels].astype(float)


SAME = (None,) * 5  # MNIST-C gives these no strength: the same at every severity
# severity 3 is MNIST-C's own strength; the others come from its lists, * marks those beyond
CORRUPTIONS = {function.__name__: Corruption(function, strengths) for function, strengths in (
    (shot_noise, (12, 5, 3, 2, 1.5)),  # photons per unit of value; * 2, 1.5
    (impulse_noise, (0.06, 0.09, 0.17, 0.27, 0.4)),  # share of pixels; * 0.4
    # (sigma, largest shift, passes); * the first two
    (glass_blur, ((0.5, 1, 1), (0.6, 1, 2), (0.7, 1, 2), (0.9, 2, 1), (1, 2, 3))),
    (motion_blur, ((6, 1), (8, 2), (10, 3), (15, 5), (15, 8))),  # (radius, sigma); * the first two
    (shear, (0.1, 0.2, 0.4, 0.6, 0.8)),  # radians, either way; * 0.1
    (scale, (1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5)),  # the digit shrinks by 1/factor
    (rotate, (0.1, 0.2, 0.4, 0.6, 0.8)),  # radians, either way; * 0.1
    (brightness, (0.3, 0.4, 0.5, 0.6, 0.7)),  # * 0.6, 0.7
    (translate, (1, 2, 3, 4, 5)),  # pixels along each axis, either way
    (stripe, SAME),
    # (thickness, decay of the fractal's roughness): MNIST-C's roughness throughout; * all but 3
    (fog, ((2, 1.4), (2.5, 1.4), (3, 1.4), (3.5, 1.4), (4, 1.4))),
    # (mean, spread, sigma of the noise, threshold, sigma of the mud): MNIST-C's mud throughout
    # (its weaker levels are CIFAR-10-C's water, which it draws as mud); * 1, 2 and 5
    (spatter, ((0.6, 0.2, 1, 0.65, 1.5), (0.62, 0.25, 1, 0.65, 1.5), (0.65, 0.3, 1, 0.65, 1.5),
               (0.67, 0.4, 1, 0.65, 1.5), (0.7, 0.5, 1, 0.65, 1.5))),
    (dotted_line, SAME),
    (zigzag, SAME),
    (canny_edges, SAME),
)}
