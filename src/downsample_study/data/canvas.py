"""Translated datasets: a 28×28 dataset's images each placed on a larger blank canvas.

Derived at load time from the source's files, nothing written: each image's position is drawn
once, from ``split_seed`` and its split (train and test apart), so every run sees the same
canvases, and centring one split leaves the other's draws as they were."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from downsample_study.data.batches import Split
from downsample_study.data.configs import SOURCE_SIDE, CanvasConfig, Placement

SPLITS = ("train", "test")  # as the loaders return them
CHUNK = 8192  # images placed at once: bounds the scatter's index tensor (8 bytes per pixel)


def _generator(split_seed: int, split: str) -> torch.Generator:
    """The split's own stream, one of two seeds drawn from ``split_seed``."""
    seeds = torch.randint(2**62, (len(SPLITS),),
                          generator=torch.Generator().manual_seed(split_seed))
    return torch.Generator().manual_seed(int(seeds[SPLITS.index(split)]))


def positions(cfg: CanvasConfig, n: int, split: str) -> torch.Tensor:
    """The top-left corner (row, col) on the canvas of each of ``split``'s ``n`` images, n × 2."""
    placement = cfg.train_placement if split == "train" else cfg.test_placement
    room = cfg.canvas - SOURCE_SIDE
    centre = room // 2
    if placement == Placement.centre:
        return torch.full((n, 2), centre, dtype=torch.long)
    low, high = (0, room) if cfg.max_offset is None else (centre - cfg.max_offset,
                                                          centre + cfg.max_offset)
    return torch.randint(low, high + 1, (n, 2), generator=_generator(cfg.split_seed, split))


def place(images: torch.Tensor, corners: torch.Tensor, canvas: int) -> torch.Tensor:
    """``images`` (N × C × h × w) each on a blank ``canvas``-px square, with its top-left
    corner at its row of ``corners`` (N × 2: row, col)."""
    n, channels, h, w = images.shape
    flat = images.new_zeros(n, channels, canvas * canvas)
    # each pixel's place on the flattened canvas, relative to the image's corner
    within = (torch.arange(h)[:, None] * canvas + torch.arange(w)).view(1, 1, h * w)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        corner = (corners[part, 0] * canvas + corners[part, 1]).view(-1, 1, 1)
        index = (corner + within).expand(-1, channels, -1)
        flat[part].scatter_(2, index, images[part].reshape(-1, channels, h * w))
    return flat.view(n, channels, canvas, canvas)


def spread(mean: tuple[float, ...], std: tuple[float, ...], canvas: int
           ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The source's per-channel mean and std over its images on the canvas, exactly: the
    same pixels plus zeros, a share ``28² / canvas²`` of each canvas being the image's."""
    share = SOURCE_SIDE**2 / canvas**2
    means = tuple(share * m for m in mean)
    squares = (share * (s**2 + m**2) for m, s in zip(mean, std, strict=True))
    return means, tuple(math.sqrt(q - m**2) for q, m in zip(squares, means, strict=True))


def translated(name: str, source, load_source):
    """``source`` (a registered ``ImageDataset`` of 28×28 images) on a canvas, as the dataset
    ``name``; ``load_source(cfg, data_dir, cache_dir)``: the source's checked (train, test).
    Its side and normalisation follow ``dataset.canvas`` (``ImageDataset.configured``)."""

    def load(cfg: CanvasConfig, data_dir, cache_dir) -> tuple[Split, Split]:
        splits = load_source(cfg, data_dir, cache_dir)
        return tuple(Split(place(split.images, positions(cfg, len(split), which), cfg.canvas),
                           split.labels) for split, which in zip(splits, SPLITS, strict=True))

    def configure(info, cfg: CanvasConfig):
        mean, std = spread(source.mean, source.std, cfg.canvas)
        return replace(info, size=cfg.canvas, mean=mean, std=std)

    registered = replace(source, name=name, load=load, per_sample=None, configure=configure)
    return configure(registered, CanvasConfig(name=name))
