"""Four of CIFAR-10-C's corruptions as their authors wrote them, for the tests to compare with.

Ported from github.com/hendrycks/robustness (Apache-2.0), ``ImageNet-C/create_c/
make_cifar_c.py``: ``glass_blur``, ``zoom_blur`` with ``clipped_zoom``, ``brightness`` and
``contrast``. Changed: the global ``np.random`` is a ``Generator`` argument (``randint`` →
``integers``); skimage's ``gaussian`` is the ``ndi.gaussian_filter`` it calls, and its
``rgb2hsv``/``hsv2rgb`` are the standard library's ``colorsys`` (the same formulas), pixel by
pixel. Images are 32×32×3 arrays of 0..255, as the reference's PIL images become.
"""

from __future__ import annotations

import colorsys

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.ndimage import zoom as scizoom


def gaussian(x, sigma, multichannel=True):
    """skimage.filters.gaussian's defaults: mode 'nearest', truncate 4, channels apart."""
    return gaussian_filter(x, [sigma, sigma, 0] if multichannel else sigma, mode="nearest",
                           truncate=4.0)


def clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    # ceil crop height(= crop width)
    ch = int(np.ceil(h / zoom_factor))

    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    # trim off any extra pixels
    trim_top = (img.shape[0] - h) // 2

    return img[trim_top:trim_top + h, trim_top:trim_top + h]


def glass_blur(x, rng, severity=1):
    # sigma, max_delta, iterations
    c = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]

    x = np.uint8(gaussian(np.array(x) / 255., sigma=c[0], multichannel=True) * 255)

    # locally shuffle pixels
    for _ in range(c[2]):
        for h in range(32 - c[1], c[1], -1):
            for w in range(32 - c[1], c[1], -1):
                dx, dy = rng.integers(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                # swap
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]

    return np.clip(gaussian(x / 255., sigma=c[0], multichannel=True), 0, 1) * 255


def zoom_blur(x, severity=1):
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][severity - 1]

    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += clipped_zoom(x, zoom_factor)

    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def contrast(x, severity=1):
    c = [.75, .5, .4, .3, 0.15][severity - 1]

    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def rgb2hsv(x):
    return np.apply_along_axis(lambda p: colorsys.rgb_to_hsv(*p), -1, x)


def hsv2rgb(x):
    return np.apply_along_axis(lambda p: colorsys.hsv_to_rgb(*p), -1, x)


def brightness(x, severity=1):
    c = [.05, .1, .15, .2, .3][severity - 1]

    x = np.array(x) / 255.
    x = rgb2hsv(x)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    x = hsv2rgb(x)

    return np.clip(x, 0, 1) * 255
