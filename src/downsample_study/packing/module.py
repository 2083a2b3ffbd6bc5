"""The LightningModule of a pack: K members trained as one network (``nets.PackedNet``).

The loss is the sum of the members' mean cross-entropies, so each member's gradient is its
solo run's; the optimizer is the members' own (an elementwise one: Adam, SGD), built once
over the packed parameters, which updates every member exactly as alone. Validation scores
each member on its own metrics; model selection, checkpoints and logs per member are the
``MemberOutputs`` callback's (``outputs.py``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from downsample_study.nets.shapes import ModelSummary
from downsample_study.packing.nets import PackedNet, member_losses
from downsample_study.training.configs import OptimizerConfig
from downsample_study.training.module import TrainLossSums, accuracy_metrics
from downsample_study.training.optimizers import create_optimizer
from downsample_study.training.speed import ChannelsLast

MEMBER_RNG = "member_rng"  # in the pack's checkpoint: each member's dropout generator


class PackedClassifier(ChannelsLast, TrainLossSums, L.LightningModule):
    def __init__(self, nets: list[nn.Module], generators: list[torch.Generator],
                 optimizer: OptimizerConfig, num_classes: int, summary: ModelSummary, *,
                 channels_last: bool | None = None):
        super().__init__()
        self.net = PackedNet(nets, generators)
        self.members = len(nets)
        self.loss_sums_shape = (2, self.members)  # each member's sums (TrainLossSums)
        self.summary = summary  # one member's
        self.optimizer_cfg = optimizer
        self.channels_last_setting = channels_last
        self.channels_last = False
        self.val_acc = nn.ModuleList(accuracy_metrics(num_classes, "val/") for _ in nets)
        self.val_loss = nn.ModuleList(MeanMetric() for _ in nets)
        # the first non-finite loss of each member: (loss, epoch from 0, step)
        self.diverged: dict[int, tuple[int, int, float]] = {}

    def setup(self, stage: str) -> None:
        self.use_memory_format(self.trainer.strategy.root_device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.in_memory_format(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        losses = member_losses(self(x), y)
        log_now = batch_idx % self.trainer.log_every_n_steps == 0
        detached = losses.detach()
        if log_now or x.device.type == "cpu":  # on an accelerator the check costs a sync
            self._note_divergence(detached)
        self._loss_window[0] += detached * len(y)
        self._loss_window[1] += len(y)
        return losses.sum()

    def _note_divergence(self, losses: torch.Tensor) -> None:
        finite = torch.isfinite(losses)
        if bool(finite.all()):
            return
        for k in torch.nonzero(~finite).flatten().tolist():
            self.diverged.setdefault(k, (float(losses[k]), self.current_epoch,
                                         self.global_step))

    def take_loss_window(self) -> torch.Tensor:
        """Each member's mean training loss since the last call, ``(K,)``."""
        window = self._loss_window
        self._epoch_loss += window
        mean = window[0] / window[1].clamp(min=1)
        window.zero_()
        return mean

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)  # the loss sums
        checkpoint[MEMBER_RNG] = [g.get_state() for g in self.net.generators]
        self.last_checkpoint = checkpoint  # the members' are made from it (outputs.py)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        for generator, state in zip(self.net.generators, checkpoint[MEMBER_RNG], strict=True):
            generator.set_state(state)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x.repeat(1, self.members, 1, 1))  # every member on the same images
        for k in range(self.members):
            if k in self.diverged:  # failed already (as its solo job stopped there)
                continue
            self.val_loss[k].update(F.cross_entropy(logits[:, k], y), weight=len(y))
            self.val_acc[k].update(logits[:, k], y)

    def member_metrics(self) -> list[dict[str, float]]:
        """Each member's validation metrics of the pass just ended (and reset them)."""
        rows = []
        for k, (loss, acc) in enumerate(zip(self.val_loss, self.val_acc, strict=True)):
            if k in self.diverged:
                rows.append({"val/loss": float("nan"), "val/acc_top1": float("nan"),
                             "val/acc_top2": float("nan")})
                continue
            rows.append({"val/loss": float(loss.compute()),
                         **{key: float(v) for key, v in acc.compute().items()}})
            loss.reset()
            acc.reset()
        return rows

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return create_optimizer(self.optimizer_cfg, self.net.parameters())

    def state_for_member(self, k: int) -> dict[str, Any]:
        return {f"net.{key}": value for key, value in self.net.member_state(k).items()}
