"""The LightningModule of a job: its K ≥ 1 members' networks (a pack as one ``PackedNet``),
trained on the sum of their cross-entropies so each member's gradient is its own."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from downsample_study.errors import DivergedError
from downsample_study.nets.auxiliary import AuxiliaryLoss, auxiliary_losses
from downsample_study.nets.configs import MODELS
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.nets.models import build_model
from downsample_study.nets.packed import PackedNet, member_losses
from downsample_study.nets.shapes import ModelSummary
from downsample_study.training.optimizers import OPTIMIZERS, create_optimizer, create_scheduler
from downsample_study.training.speed import ChannelsLast


@functools.cache
def _destroy_process_group_at_exit() -> None:
    """Tear the process group down before the interpreter does: Lightning does so for NCCL
    only, and a gloo group left to teardown now and then aborted a CPU process ("terminate
    called without an active exception")."""

    def destroy() -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    atexit.register(destroy)


# the epoch's training-loss sums (loss × images, images) so far, for a checkpoint saved mid-epoch
TRAIN_LOSS_SUMS = "train_loss_sums"
# a CPU pack evaluates at most this many images × members at once (benchmarks/RESULTS.md)
PACK_EVAL_IMAGES = 1024


def accuracy_metrics(num_classes: int, prefix: str) -> MetricCollection:
    # "micro": the fraction of images right (the default, "macro", averages per class)
    return MetricCollection(
        {
            f"acc_top{k}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for k in (1, 2)
        },
        prefix=prefix,
    )


def diverged(what: str, value: float, epoch: int, step: int) -> DivergedError:
    """The error of a run one of whose losses or metrics (``what``) is no longer finite, at
    ``epoch`` (from 1) and ``step``."""
    return DivergedError(f"{what} is {value} at epoch {epoch}, step {step}: the run diverged "
                         f"(lower optimizer.lr, or enable downsample.batch_norm)")


def hyper_parameters(settings: Any, input_shape, num_classes: int,
                     optimizer: Any = None) -> dict[str, Any]:
    """The ``DownsampleClassifier`` arguments of a job (each member's checkpoint's
    hyper-parameters) from its validated config; ``optimizer``: its node as it trains."""
    return {"model": plain(settings.model), "downsample": plain(settings.downsample),
            "optimizer": plain(optimizer or settings.optimizer), "input_shape": list(input_shape),
            "num_classes": num_classes, "channels_last": settings.speed.channels_last,
            "compile_mode": str(settings.speed.compile)}


def plain(config: Any) -> Any:
    """A config dataclass (or dict) as plain JSON data: what a checkpoint can hold and load
    under torch's ``weights_only`` default (no pickled classes, enums as their values)."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config))


class TrainLossSums:
    """The epoch's training-loss sums ``[loss × images, images, auxiliary loss × images]``
    (per member), kept in checkpoints so a fit resumed mid-epoch goes on with them."""

    loss_sums_shape: tuple[int, ...] = (3,)

    def on_train_epoch_start(self) -> None:
        self._loss_window = torch.zeros(self.loss_sums_shape, device=self.device)
        self._epoch_loss = torch.zeros(self.loss_sums_shape, device=self.device)

    def on_train_start(self) -> None:
        # a fit resumed in the middle of an epoch gets no epoch start
        sums = getattr(self, "_restored_sums", None)
        if sums is None:
            self.on_train_epoch_start()
        else:  # a checkpoint from before the auxiliary loss has two rows: it had none
            self._loss_window, self._epoch_loss = (
                torch.cat([t, t.new_zeros((3 - len(t), *t.shape[1:]))]).to(self.device)
                for t in sums)
            self._restored_sums = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if hasattr(self, "_epoch_loss"):
            checkpoint[TRAIN_LOSS_SUMS] = [self._loss_window.cpu(), self._epoch_loss.cpu()]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restored_sums = checkpoint.get(TRAIN_LOSS_SUMS)

    def mean_train_loss(self) -> torch.Tensor:
        """This epoch's mean training loss so far (this process's batches), per member."""
        total = self._epoch_loss + self._loss_window
        return total[0] / total[1].clamp(min=1)

    def take_loss_window(self) -> torch.Tensor:
        """The mean training loss and auxiliary loss since the last call (two rows, per
        member), added to the epoch's."""
        window = self._loss_window
        self._epoch_loss += window
        means = window[0::2] / window[1].clamp(min=1)
        window.zero_()
        return means


MEMBER_RNG = "member_rng"  # in a pack's checkpoint: each member's dropout generator
VAL_METRICS = ("val/loss", "val/acc_top1", "val/acc_top2")


class DownsampleClassifier(ChannelsLast, TrainLossSums, L.LightningModule):
    """The networks of one job's members, trained on cross-entropy. Its hyper-parameters are
    plain data, so ``load_from_checkpoint`` rebuilds any member's network."""

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
        seeds: list[int] | None = None,
    ):
        """``channels_last``, ``compile_mode``: as ``speed.*``; ``seeds``: one network each,
        initialised as a job seeds itself (none: one network, as a checkpoint holds it)."""
        super().__init__()
        self.save_hyperparameters(ignore=["seeds"], logger=False)
        configs = (MODELS.schema(model["name"])(**model),
                   DOWNSAMPLES.schema(downsample["name"])(**downsample))
        nets, generators = [], []
        for seed in seeds or [None]:
            if seed is not None:
                L.seed_everything(seed, verbose=False)
            nets.append(build_model(*configs, tuple(input_shape), num_classes))
            # a pack's member draws its dropout masks from a generator of its own
            generators.append(torch.Generator().set_state(torch.get_rng_state()))
        self.members = len(nets)
        self.summary = ModelSummary.of(nets[0], tuple(input_shape))  # one member's
        self.net = nets[0] if self.members == 1 else PackedNet(nets, generators)
        self.loss_sums_shape = (3,) if self.members == 1 else (3, self.members)
        # whether an operator adds a term to the objective (train/aux_loss)
        self.adds_losses = any(isinstance(m, AuxiliaryLoss) for m in self.net.modules())
        self.optimizer_cfg = OPTIMIZERS.schema(optimizer["name"])(**optimizer)
        self.channels_last_setting = channels_last
        self.channels_last = False  # decided in setup(), once the device is known
        if compile_mode != "none":
            self.net.compile(mode=compile_mode)  # in place: state_dict keys unchanged
        self.val_acc = nn.ModuleList(accuracy_metrics(num_classes, "val/") for _ in nets)
        self.val_loss = nn.ModuleList(MeanMetric() for _ in nets)
        self.test_acc = accuracy_metrics(num_classes, "test/")
        self.test_loss = MeanMetric()
        # each member's first loss or metric that is not finite: (what, value, epoch, step)
        self.diverged: dict[int, tuple[str, float, int, int]] = {}
        self.validation_rows: list[dict[str, float]] = []  # of the pass just ended

    def setup(self, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            _destroy_process_group_at_exit()
        self.use_memory_format(self.trainer.strategy.root_device)
        if self.members > 1:
            self.net.generators_on(self.trainer.strategy.root_device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.in_memory_format(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        losses = F.cross_entropy(logits, y) if self.members == 1 else member_losses(logits, y)
        added = auxiliary_losses(self.net, self.members) if self.adds_losses else None
        if added is not None:
            losses = losses + added
        # Summed on the device, read every log_every_n_steps (members.py): self.log per step
        # costs much of a small CPU step in Python. The finiteness check syncs
        # an accelerator, so there it runs only with the logging.
        log_now = batch_idx % self.trainer.log_every_n_steps == 0
        detached = losses.detach()
        if log_now or x.device.type == "cpu":
            self._note_divergence(detached)
        window = self._loss_window
        window[0] += detached * len(y)
        window[1] += len(y)
        if added is not None:
            window[2] += added.detach() * len(y)
        if log_now:  # the progress bar's (each member's logger: training/members.py)
            self.log("train/loss", (window[0] / window[1]).mean(), prog_bar=True, logger=False)
        return losses if self.members == 1 else losses.sum()

    def _note_divergence(self, losses: torch.Tensor) -> None:
        finite = torch.isfinite(losses).reshape(-1)
        if not bool(finite.all()):
            for k in torch.nonzero(~finite).flatten().tolist():
                self.note_divergence(k, "training loss", float(losses.reshape(-1)[k]))

    def note_divergence(self, k: int, what: str, value: float) -> None:
        """Member k's ``what`` is not finite: it failed there (its first is kept); once every
        member has, training stops with a ``DivergedError``."""
        self.diverged.setdefault(k, (what, value, self.current_epoch + 1, self.global_step))
        if len(self.diverged) == self.members:
            raise diverged(*self.diverged[min(self.diverged)])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)  # the loss sums
        if self.members > 1:
            checkpoint[MEMBER_RNG] = [g.get_state() for g in self.net.generators]
            self.last_checkpoint = checkpoint  # the members' are made from it (members.py)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.members > 1:
            for generator, state in zip(self.net.generators, checkpoint[MEMBER_RNG], strict=True):
                generator.set_state(state)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        if self.members == 1:
            logits = self(x).unsqueeze(1)
        else:  # every member on the same images; on CPU a part at a time, as caches hold
            part = max(1, PACK_EVAL_IMAGES // self.members) if x.device.type == "cpu" else len(x)
            logits = torch.cat([self(images.repeat(1, self.members, 1, 1))
                                for images in x.split(part)])
        for k in range(self.members):
            if k not in self.diverged:  # failed already (as its solo job stopped there)
                self.val_loss[k].update(F.cross_entropy(logits[:, k], y), weight=len(y))
                self.val_acc[k].update(logits[:, k], y)

    def on_validation_epoch_end(self) -> None:
        """Each member's metrics (NaN once diverged) for ``members.py``; a lone member's are
        logged too, for ``trainer.validate`` and the progress bar."""
        rows = []
        for k, (loss, acc) in enumerate(zip(self.val_loss, self.val_acc, strict=True)):
            if k in self.diverged:
                rows.append(dict.fromkeys(VAL_METRICS, float("nan")))
                continue
            rows.append({"val/loss": float(loss.compute()),
                         **{key: float(value) for key, value in acc.compute().items()}})
            loss.reset()
            acc.reset()
        self.validation_rows = rows
        if self.members == 1:
            self.log_dict(rows[0], prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.test_loss.update(F.cross_entropy(logits, y), weight=len(y))
        self.test_acc.update(logits, y)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log_dict(self.test_acc, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer = create_optimizer(self.optimizer_cfg, self.net.parameters())
        schedule = self.optimizer_cfg.scheduler
        if schedule.name == "none":  # (estimating the steps sets the data up: not unasked)
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": create_scheduler(schedule, optimizer, self._optimizer_steps())}

    def _optimizer_steps(self) -> int:
        """The training's optimizer steps, counted as Lightning's estimated_stepping_batches
        counts them: that sets the data up before a resume restores its place in it."""
        trainer = self.trainer
        batches, limit = len(trainer.datamodule.train_dataloader()), trainer.limit_train_batches
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
        total = max(1, math.ceil(batches / trainer.accumulate_grad_batches)) * trainer.max_epochs
        return min(total, trainer.max_steps) if trainer.max_steps > 0 else total
