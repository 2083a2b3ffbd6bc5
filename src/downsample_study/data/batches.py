"""A split as whole uint8 tensors on the training device, and its batches by index.

A batch is an index slice, converted and normalised in one fused op: no per-sample PIL
conversion, no DataLoader workers competing with the compute threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


def normaliser(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) that take uint8 values to normalised ones in one fused op:
    ``addcmul(shift, images.float(), scale)`` = (images / 255 - mean) / std."""
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std_t), -torch.tensor(mean, device=device).view(1, -1, 1, 1) / std_t


CROP_PAD = 4  # CIFAR-10's usual augmentation: pad 4, crop back to size


def _crop_flip_draws(n: int, generator: torch.Generator, pad: int) -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, 2 * pad + 1, (2, n), generator=generator),
            torch.rand(n, generator=generator) < 0.5)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator,
                     pad: int = CROP_PAD) -> torch.Tensor:
    """Per-image random crop (zero padding ``pad``) and horizontal flip, on the whole batch."""
    n, _, h, w = x.shape
    shifts, flip = (t.to(x.device) for t in _crop_flip_draws(n, generator, pad))
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (shifts[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (shifts[1, :, None] + torch.arange(w, device=x.device))
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class TensorBatches:
    """Batches of a ``Split`` by index: normalised float images and labels.

    The shuffle is drawn from ``(seed, epoch)``, so a resumed run sees the same batches. Each
    DDP rank gets its own shard: equal-length for training (DDP steps in lockstep), every sample
    once for evaluation. Stateful for Lightning: a mid-epoch checkpoint holds ``completed()``,
    and the resumed epoch starts after those batches with the augmentation's draws in step.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        augment: bool = False,
        rank: int = 0,
        world_size: int = 1,
        completed: Callable[[], int] = lambda: 0,
    ):
        self.split, self.batch_size = split, batch_size
        self.scale, self.shift = normaliser(mean, std, split.images.device)
        self.shuffle, self.seed, self.epoch, self.augment = shuffle, seed, epoch, augment
        self.rank, self.world_size = rank, world_size
        self.completed = completed
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches already done)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch(), "completed": self.completed()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (state["epoch"], state["completed"])

    def _indices(self, generator: torch.Generator) -> torch.Tensor:
        n = len(self.split)
        if self.shuffle:
            order = torch.randperm(n, generator=generator)
            per_rank = n // self.world_size
            return order[self.rank * per_rank : (self.rank + 1) * per_rank]
        return torch.arange(self.rank, n, self.world_size)

    def __len__(self) -> int:
        n = len(self.split)
        n = n // self.world_size if self.shuffle else len(range(self.rank, n, self.world_size))
        return -(-n // self.batch_size)

    def index_batches(self) -> Iterator[tuple[torch.Tensor, torch.Generator]]:
        """This epoch's batches as indices into the split, from where a resumed epoch goes on,
        each with the generator that draws its augmentation next."""
        epoch = self.epoch()
        skip = self._resume_at[1] if self._resume_at and self._resume_at[0] == epoch else 0
        self._resume_at = None
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        index = self._indices(generator).to(self.split.images.device)
        for number, start in enumerate(range(0, len(index), self.batch_size)):
            batch = index[start : start + self.batch_size]
            if number < skip:  # trained on before the checkpoint: only keep the draws in step
                if self.augment:
                    _crop_flip_draws(len(batch), generator, CROP_PAD)
                continue
            yield batch, generator

    def normalised(self, images: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """uint8 images (``repeats`` splits' images side by side along the channels) as
        normalised float ones, in one fused op."""
        scale, shift = (t.repeat(1, repeats, 1, 1) if repeats > 1 else t
                        for t in (self.scale, self.shift))
        return torch.addcmul(shift, images.float(), scale)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch, generator in self.index_batches():
            # index_select, not images[batch]: faster on CPU (benchmarks/RESULTS.md)
            x = self.normalised(self.split.images.index_select(0, batch))
            if self.augment:
                x = random_crop_flip(x, generator)
            yield x, self.split.labels.index_select(0, batch)
