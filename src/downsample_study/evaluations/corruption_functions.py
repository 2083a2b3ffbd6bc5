"""The corruptions by name for each channel count, and a batch under one of them; torch-free.

MNIST-C's set (``mnist_c.py``) for grey images, CIFAR-10-C's (``cifar10_c.py``) for RGB. The
draws depend on (seed, corruption, block of images) and not on the severity: every severity
sees the same noise, so the errors' rise over severities is not sampling noise.
"""

from __future__ import annotations

import zlib

import numpy as np

from downsample_study.errors import ConfigError
from downsample_study.evaluations import cifar10_c, mnist_c
from downsample_study.evaluations.corruption_tools import Corruption

FAMILIES: dict[int, dict[str, Corruption]] = {1: mnist_c.CORRUPTIONS, 3: cifar10_c.CORRUPTIONS}
FAMILY_NAMES = {1: "MNIST-C", 3: "CIFAR-10-C"}
BLOCK = 100  # images per generator: MNIST-C's fog draws a 256×256 map per image
KEY = "evaluation.corruptions.names"


def corruption_names(names: list[str], channels: int, key: str = KEY) -> list[str]:
    """``names`` (empty: every corruption for ``channels``), each checked: a ``ConfigError``
    naming ``key``, the name and the allowed ones where one does not apply."""
    family = FAMILIES.get(channels)
    if family is None:
        raise ConfigError(f"{key}: no corruptions for {channels}-channel images; "
                          f"MNIST-C's are for 1 channel, CIFAR-10-C's for 3")
    allowed = f"allowed for {channels}-channel images ({FAMILY_NAMES[channels]}): " + \
        ", ".join(family)
    for name in names:
        if name not in family:
            other = [FAMILY_NAMES[c] for c, members in FAMILIES.items() if name in members]
            what = f"{other[0]}'s, not for {channels}-channel images" if other else "unknown"
            raise ConfigError(f"{key}: {name!r} is {what}; {allowed}")
    if len(set(names)) < len(names):
        raise ConfigError(f"{key}: a corruption listed twice in {list(names)}")
    return list(names) or list(family)


def generator(seed: int, name: str, block: int) -> np.random.Generator:
    """The draws of corruption ``name`` for the ``block``-th ``BLOCK`` images."""
    return np.random.default_rng([seed % 2**64, zlib.crc32(name.encode()), block])


def corrupt_pixels(x: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``x`` (N×C×H×W floats in [0, 1]) under corruption ``name`` at ``severity`` (0: ``x``
    itself, 1 to 5), in [0, 1]; ``BLOCK`` images at a time, each block its own draws."""
    if severity == 0:
        return x
    channels = x.shape[1]
    corruption = FAMILIES[channels][name]
    strength = corruption.strengths[severity - 1]
    x = x[:, 0] if channels == 1 else x.transpose(0, 2, 3, 1)  # the references' layout
    blocks = [corruption.apply(x[start : start + BLOCK].copy(), strength,
                               generator(seed, name, block))
              for block, start in enumerate(range(0, len(x), BLOCK))]
    out = np.clip(np.concatenate(blocks), 0, 1) if blocks else x
    return out[:, None] if channels == 1 else out.transpose(0, 3, 1, 2)
