"""A pack's data: each member's training batches in its own seed's order, side by side.

Member k's batch of a step is the one its solo run trains on at that step (``TensorBatches``
with the member's seed); the pack's input holds them along the channels, member by member,
with the labels as ``(batch, K)``. Validation and test images are the same for every member.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from downsample_study.data.batches import TensorBatches
from downsample_study.data.datamodule import DownsampleDataModule
from downsample_study.data.datasets import DatasetConfig
from downsample_study.packing.nets import stack_members


class PackedBatches:
    """The members' ``TensorBatches`` zipped: one pack batch per step (stateful like them)."""

    def __init__(self, members: list[TensorBatches]):
        self.members = members

    def __len__(self) -> int:
        return len(self.members[0])

    def state_dict(self) -> dict[str, int]:
        return self.members[0].state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        for batches in self.members:
            batches.load_state_dict(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in zip(*self.members, strict=True):
            yield stack_members([x for x, _ in batch]), torch.stack([y for _, y in batch], 1)


class PackedDataModule(DownsampleDataModule):
    def __init__(self, cfg: DatasetConfig, data_dir: Path, cache_dir: Path, seeds: list[int]):
        super().__init__(cfg, data_dir, cache_dir, seeds[0])
        self.seeds = list(seeds)

    def train_dataloader(self) -> PackedBatches:
        return PackedBatches([self.batches("train", train=True, seed=s) for s in self.seeds])
