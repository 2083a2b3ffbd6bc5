"""The LightningModule: cross-entropy training, top-1/top-2 accuracy on validation and test."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from downsample_study.errors import DivergedError
from downsample_study.nets.configs import DOWNSAMPLES, MODELS
from downsample_study.nets.models import build_model
from downsample_study.nets.shapes import ModelSummary
from downsample_study.training.optimizers import OPTIMIZERS, create_optimizer
from downsample_study.training.speed import ChannelsLast


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


def accuracy_metrics(num_classes: int, prefix: str) -> MetricCollection:
    # average="micro": the fraction of images classified correctly (torchmetrics' default,
    # "macro", averages per-class accuracies instead)
    return MetricCollection(
        {
            f"acc_top{k}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for k in (1, 2)
        },
        prefix=prefix,
    )


def diverged(loss: float, epoch: int, step: int) -> DivergedError:
    """The error of a run whose training loss is no longer finite (``epoch`` from 0)."""
    return DivergedError(f"training loss is {loss} at epoch {epoch}, step {step}: the run "
                         f"diverged (lower optimizer.lr, or enable downsample.batch_norm)")


def solo_hyper_parameters(run_cfg: Any, input_shape, num_classes: int) -> dict[str, Any]:
    """A job's ``DownsampleClassifier`` arguments (its checkpoints' hyper-parameters) from its
    validated config."""
    return {"model": plain(run_cfg.model), "downsample": plain(run_cfg.downsample),
            "optimizer": plain(run_cfg.optimizer), "input_shape": list(input_shape),
            "num_classes": num_classes, "channels_last": run_cfg.speed.channels_last,
            "compile_mode": str(run_cfg.speed.compile)}


def plain(config: Any) -> Any:
    """A config dataclass (or dict) as plain JSON data: what a checkpoint can hold and load
    under torch's ``weights_only`` default (no pickled classes, enums as their values)."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config))


class TrainLossSums:
    """The epoch's training-loss sums of a LightningModule, ``[loss × images, images]`` (per
    member of a pack: ``loss_sums_shape``), kept in its checkpoints: a fit resumed in the
    middle of an epoch goes on with them."""

    loss_sums_shape: tuple[int, ...] = (2,)

    def on_train_epoch_start(self) -> None:
        self._loss_window = torch.zeros(self.loss_sums_shape, device=self.device)
        self._epoch_loss = torch.zeros(self.loss_sums_shape, device=self.device)

    def on_train_start(self) -> None:
        # a fit resumed in the middle of an epoch gets no epoch start
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
        return total[0] / total[1].clamp(min=1)


class DownsampleClassifier(ChannelsLast, TrainLossSums, L.LightningModule):
    """The network of one job, trained on cross-entropy.

    Its hyper-parameters are the job's ``model``, ``downsample`` and ``optimizer`` nodes as
    plain data, with the input shape and the number of classes: every checkpoint carries them,
    and ``DownsampleClassifier.load_from_checkpoint(path)`` rebuilds the network from them.
    """

    def __init__(
        self,
        model: dict[str, Any],
        downsample: dict[str, Any],
        optimizer: dict[str, Any],
        input_shape: list[int],
        num_classes: int,
        *,
        channels_last: bool | None = None,
        compile_mode: str = "none",
        net: nn.Module | None = None,
        summary: ModelSummary | None = None,
    ):
        """``channels_last`` and ``compile_mode`` as ``speed.channels_last`` and
        ``speed.compile`` (``training/speed.py``); ``net`` (and its ``summary``): the network
        already built from those configs, as the job builds it."""
        super().__init__()
        self.save_hyperparameters(ignore=["net", "summary"], logger=False)
        if net is None:
            net = build_model(MODELS.schema(model["name"])(**model),
                              DOWNSAMPLES.schema(downsample["name"])(**downsample),
                              tuple(input_shape), num_classes)
        self.net = net
        self.summary = summary or ModelSummary.of(net, tuple(input_shape))
        self.optimizer_cfg = OPTIMIZERS.schema(optimizer["name"])(**optimizer)
        self.channels_last_setting = channels_last
        self.channels_last = False  # decided in setup(), once the device is known
        if compile_mode != "none":
            self.net.compile(mode=compile_mode)  # in place: state_dict keys unchanged
        self.val_acc = accuracy_metrics(num_classes, "val/")
        self.test_acc = accuracy_metrics(num_classes, "test/")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def setup(self, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            _destroy_process_group_at_exit()
        self.use_memory_format(self.trainer.strategy.root_device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.in_memory_format(x))

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
            raise diverged(loss.item(), self.current_epoch, self.global_step)
        window = self._loss_window
        window[0] += loss.detach() * len(y)
        window[1] += len(y)
        if log_now:
            self._epoch_loss += window
            self.log("train/loss", window[0] / window[1], on_step=True, on_epoch=False,
                     prog_bar=True)
            self._log_epoch(on_step=True)
            window.zero_()
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.mean_train_loss(), on_epoch=True, sync_dist=True)
        self._log_epoch()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.state.fn == TrainerFn.FITTING:
            self._log_epoch()

    def _log_epoch(self, on_step: bool = False) -> None:
        """Log ``epoch`` counted from 1, as the console, ``epochs.csv`` and ``results.json``
        count it (Lightning adds its own, from 0, to the metrics that lack one); the best
        checkpoint's file name takes it too."""
        self.log("epoch", float(self.current_epoch + 1), on_step=on_step, on_epoch=not on_step,
                 sync_dist=False, rank_zero_only=True)

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
