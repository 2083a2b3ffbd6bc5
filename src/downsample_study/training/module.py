"""The LightningModule: cross-entropy training, top-1/top-2 accuracy on validation and test."""

from __future__ import annotations

import atexit
import functools

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from downsample_study.errors import DivergedError
from downsample_study.nets.shapes import ModelSummary
from downsample_study.training.optimizers import OptimizerConfig, create_optimizer
from downsample_study.training.speed import use_channels_last


@functools.cache
def _destroy_process_group_at_exit() -> None:
    """Tear the process group down before the interpreter does.

    Lightning does this for NCCL only. A gloo group (CPU jobs) left to the interpreter's
    teardown now and then aborted a process ("terminate called without an active exception",
    1 run in ~5 of a 2-process CPU job).
    """

    def destroy() -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    atexit.register(destroy)


# the epoch's training-loss sums (loss × images, images) so far, for a checkpoint saved mid-epoch
TRAIN_LOSS_SUMS = "train_loss_sums"


def _accuracy(num_classes: int, prefix: str) -> MetricCollection:
    # average="micro": the fraction of images classified correctly (torchmetrics' default,
    # "macro", averages per-class accuracies instead)
    return MetricCollection(
        {
            f"acc_top{k}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for k in (1, 2)
        },
        prefix=prefix,
    )


class DownsampleClassifier(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerConfig,
        num_classes: int,
        summary: ModelSummary,
        *,
        channels_last: bool | None = None,
        compile_mode: str = "none",
    ):
        """``channels_last`` and ``compile_mode`` as ``speed.channels_last`` and
        ``speed.compile`` (``training/speed.py``)."""
        super().__init__()
        self.net, self.optimizer_cfg, self.summary = net, optimizer, summary
        self.channels_last_setting = channels_last
        self.channels_last = False  # decided in setup(), once the device is known
        if compile_mode != "none":
            self.net.compile(mode=compile_mode)  # in place: state_dict keys unchanged
        self.val_acc = _accuracy(num_classes, "val/")
        self.test_acc = _accuracy(num_classes, "test/")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def setup(self, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            _destroy_process_group_at_exit()
        self.channels_last = use_channels_last(
            self.channels_last_setting, self.trainer.strategy.root_device
        )
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def on_fit_start(self) -> None:
        for logger in self.loggers:
            logger.log_metrics(
                {
                    "params/total": self.summary.params_total,
                    "params/trainable": self.summary.params_trainable,
                    "params/downsample": self.summary.params_downsample,
                    "flops/forward": self.summary.flops_forward,
                },
                step=0,
            )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        # The loss is summed on the device and handed to Lightning's logging only every
        # log_every_n_steps steps: self.log costs ~1 ms of Python per call, a fifth of a
        # LeNet step on CPU. The finiteness check is free on CPU; on an accelerator it costs
        # a sync, so there it runs with the logging.
        log_now = batch_idx % self.trainer.log_every_n_steps == 0
        if (log_now or x.device.type == "cpu") and not torch.isfinite(loss):
            raise DivergedError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}: the run diverged (lower optimizer.lr, or enable "
                f"downsample.batch_norm)"
            )
        window = self._loss_window
        window[0] += loss.detach() * len(y)
        window[1] += len(y)
        if log_now:
            self._epoch_loss += window
            self.log("train/loss", window[0] / window[1], on_step=True, on_epoch=False,
                     prog_bar=True)
            window.zero_()
        return loss

    def on_train_epoch_start(self) -> None:
        self._loss_window = torch.zeros(2, device=self.device)
        self._epoch_loss = torch.zeros(2, device=self.device)

    def on_train_start(self) -> None:
        # a fit resumed in the middle of an epoch gets no epoch start: go on with the sums
        # the checkpoint holds
        sums = getattr(self, "_restored_sums", None)
        if sums is None:
            self.on_train_epoch_start()
        else:
            self._loss_window, self._epoch_loss = (t.to(self.device) for t in sums)
            self._restored_sums = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if hasattr(self, "_epoch_loss"):
            checkpoint[TRAIN_LOSS_SUMS] = [self._loss_window.cpu(), self._epoch_loss.cpu()]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restored_sums = checkpoint.get(TRAIN_LOSS_SUMS)

    def mean_train_loss(self) -> torch.Tensor:
        """This epoch's mean training loss so far (this process's batches)."""
        total = self._epoch_loss + self._loss_window
        return total[0] / total[1]

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.mean_train_loss(), on_epoch=True, sync_dist=True)

    def _evaluate(self, batch, loss_metric: MeanMetric, acc: MetricCollection, prefix: str):
        x, y = batch
        logits = self(x)
        loss_metric.update(F.cross_entropy(logits, y), weight=len(y))
        acc.update(logits, y)
        self.log(f"{prefix}loss", loss_metric, on_step=False, on_epoch=True)
        self.log_dict(acc, on_step=False, on_epoch=True, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_acc, "val/")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_loss, self.test_acc, "test/")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return create_optimizer(self.optimizer_cfg, self.parameters())
