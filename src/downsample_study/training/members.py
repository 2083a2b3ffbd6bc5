"""What each member of a job writes while it trains, as a job of its own would: selection on
its own ``val/acc_top1``, its checkpoints, ``epochs.csv`` rows and logger metrics. A member's
checkpoint is a one-member job's, so it resumes alone and loads with ``load_run``."""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from downsample_study.console import say
from downsample_study.layout import BEST_PREFIX, CHECKPOINTS, LAST, best_checkpoint_name
from downsample_study.nets.packed import PackedNet
from downsample_study.results import write_epoch_row
from downsample_study.storage import atomic_write
from downsample_study.training.module import TRAIN_LOSS_SUMS, DownsampleClassifier
from downsample_study.training.tracking import RunIdentity, Tracking

log = logging.getLogger(__name__)

MONITOR = "val/acc_top1"  # model selection: the checkpoint of the best epoch on it


@dataclass
class Member:
    """One member of a job: its seed, folder, composed and validated config, tracker run."""

    seed: int
    output_dir: Path
    identity: RunIdentity
    cfg: Any = None  # its composed config (DictConfig), as a failure records it
    settings: Any = None  # its validated config (config.validate.RunConfig)
    config: dict[str, Any] = field(default_factory=dict)  # resolved: its results' and SameJob's
    overrides: list[str] = field(default_factory=list)  # a pack's member's, as Hydra's job's
    tracking: Tracking = field(default_factory=Tracking)  # its runs in the loggers chosen

    @property
    def last(self) -> Path:
        return self.output_dir / CHECKPOINTS / LAST

    def selected(self) -> Path | None:
        """Its selected checkpoint (the newest ``best-epoch<N>.ckpt``), None before one."""
        found = sorted((self.output_dir / CHECKPOINTS).glob(f"{BEST_PREFIX}*.ckpt"),
                       key=lambda p: p.stat().st_mtime_ns)
        return found[-1] if found else None

    def __getstate__(self) -> dict[str, Any]:
        """A process started by ``ddp_spawn`` gets the member without its composed config
        (Hydra's typed config does not pickle), which only the job's main process records."""
        return {**self.__dict__, "cfg": None}

    def finish(self, exit_code: int) -> None:
        """End its tracker runs (the members' runs are open side by side); a tracker that
        fails to (a full disk) costs a warning: the outcome is recorded already."""
        for failure in self.tracking.finish(exit_code):
            log.warning("%s: its tracker run did not end cleanly (%s)", self.output_dir.name,
                        failure)


def _not_finite(train: float, row: dict[str, float]) -> tuple[str, float] | None:
    """The first loss or metric of a member's epoch that is not finite, named."""
    for what, value in (("training loss", train), ("validation loss", row["val/loss"]),
                        (f"validation {MONITOR.split('/')[1]}", row[MONITOR])):
        if not math.isfinite(value):
            return what, value
    return None


def _copy(source: Path, target: Path) -> None:
    """Atomic copy keeping the mtime: a resume takes ``last.ckpt`` among equal times."""
    with open(source, "rb") as read, atomic_write(target, "wb") as write:
        shutil.copyfileobj(read, write)
    saved = source.stat()
    os.utime(target, ns=(saved.st_atime_ns, saved.st_mtime_ns))


def best_epoch(checkpoint: Path | None) -> int | None:
    """The epoch of a selected checkpoint, counted from 1 (its file name has it)."""
    digits = Path(checkpoint or "").stem.removeprefix(BEST_PREFIX)
    return int(digits) if digits.isdigit() else None


def member_checkpoint(pack: dict[str, Any], net: PackedNet, k: int,
                      hyper_parameters: dict[str, Any],
                      callbacks: dict[str, Any]) -> dict[str, Any]:
    """Member k's checkpoint, made from its pack's ``pack``."""
    ckpt = {key: pack[key] for key in ("epoch", "global_step", "pytorch-lightning_version",
                                       "loops") if key in pack}
    ckpt["state_dict"] = {f"net.{key}": value for key, value in net.member_state(k).items()}
    packed_names = [name for name, _ in net.body.named_parameters()]
    optimizers = []
    for optimizer in pack.get("optimizer_states", []):
        state = {}
        for index, solo_key in enumerate(net.solo_parameters):
            packed_key, _ = net.locate(solo_key, k)
            entry = optimizer["state"].get(packed_names.index(packed_key))
            if entry is not None:
                state[index] = {name: net.member_tensor(solo_key, value, k)
                                if isinstance(value, torch.Tensor) else value
                                for name, value in entry.items()}
        groups = [{**group, "params": list(range(len(net.solo_parameters)))}
                  for group in optimizer["param_groups"]]
        optimizers.append({"state": state, "param_groups": groups})
    ckpt["optimizer_states"] = optimizers
    ckpt["lr_schedulers"] = copy.deepcopy(pack.get("lr_schedulers", []))  # the same for each
    ckpt["callbacks"] = callbacks
    ckpt["hparams_name"] = "kwargs"
    ckpt["hyper_parameters"] = hyper_parameters
    if TRAIN_LOSS_SUMS in pack:
        ckpt[TRAIN_LOSS_SUMS] = [t[:, k].clone() for t in pack[TRAIN_LOSS_SUMS]]
    return ckpt


def learning_rate(trainer: L.Trainer) -> float:
    """The optimizer's learning rate now (one parameter group; a pack's members share it)."""
    return float(trainer.optimizers[0].param_groups[0]["lr"])


def _at_epoch_end(trainer: L.Trainer) -> bool:
    """Save at the training epoch's end (after its validation), as ``ModelCheckpoint`` would,
    so a checkpoint holds the loop state of a finished epoch."""
    return trainer.check_val_every_n_epoch == 1 and trainer.val_check_interval == 1.0


class MemberOutputs(Callback):
    """Per member: selection, checkpoints, ``epochs.csv`` rows and logger metrics; one console
    line per epoch. ``job_last``: the job's own ``last.ckpt``; ``member_callbacks(k, module)``:
    the other callbacks' states for member k's checkpoint."""

    def __init__(self, members: list[Member], job_last: Path, member_callbacks: Any = None):
        self.members, self.job_last = members, job_last
        self.member_callbacks = member_callbacks
        self.best: list[float | None] = [None] * len(members)
        self.best_epoch: list[int | None] = [None] * len(members)
        # the epoch of the last rows written here, if from its one validation, at its end
        self.written_epoch: int | None = None
        self._lr: float | None = None  # the learning rate of the last step

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = list(state["best"]), list(state["best_epoch"])

    def on_load_checkpoint(self, trainer, module, checkpoint: dict[str, Any]) -> None:
        """Older checkpoints kept ``ModelCheckpoint``'s state instead: read the best from it."""
        if self.state_key in checkpoint.get("callbacks", {}):
            return
        for key, state in checkpoint.get("callbacks", {}).items():
            if key.startswith("ModelCheckpoint") and state.get("best_model_path"):
                score = state.get("best_model_score")
                self.best = [None if score is None else float(score)]
                self.best_epoch = [best_epoch(Path(state["best_model_path"]))]

    def on_fit_start(self, trainer: L.Trainer, module: DownsampleClassifier) -> None:
        self._start = self._epoch_start = time.perf_counter()
        summary = module.summary
        for member in self.members:
            member.tracking.log_metrics({
                "params/total": summary.params_total,
                "params/trainable": summary.params_trainable,
                "params/downsample": summary.params_downsample,
                "flops/forward": summary.flops_forward}, step=0)

    def on_train_epoch_start(self, trainer: L.Trainer, module: DownsampleClassifier) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_start(self, trainer, module: DownsampleClassifier, batch,
                             batch_idx: int) -> None:
        self._lr = learning_rate(trainer)  # this step's (schedulers step before batch_end)

    def on_train_batch_end(self, trainer, module: DownsampleClassifier, outputs, batch,
                           batch_idx: int) -> None:
        if batch_idx % trainer.log_every_n_steps:
            return
        loss, added = module.take_loss_window().reshape(2, -1).tolist()
        for k, member in enumerate(self.members):
            metrics = {"train/loss": loss[k], "train/lr": self._lr,
                       "epoch": float(trainer.current_epoch + 1)}
            if module.adds_losses:  # the operator's part of train/loss
                metrics["train/aux_loss"] = added[k]
            member.tracking.log_metrics(metrics, step=trainer.global_step)

    def on_validation_end(self, trainer: L.Trainer, module: DownsampleClassifier) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._rows = module.validation_rows
        if not _at_epoch_end(trainer):
            self._write(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: DownsampleClassifier) -> None:
        if _at_epoch_end(trainer) and getattr(self, "_rows", None):
            self._write(trainer, module)

    def _write(self, trainer: L.Trainer, module: DownsampleClassifier) -> None:
        epoch, rows, self._rows = trainer.current_epoch + 1, self._rows, None
        self.written_epoch = epoch if _at_epoch_end(trainer) else None
        lr = self._lr or learning_rate(trainer)  # the epoch's last step's
        train = module.mean_train_loss().reshape(-1)
        logged = trainer.strategy.reduce(train, reduce_op="mean").tolist()  # every process's
        train = train.tolist()
        improved, failing = [], []
        for k, (member, row) in enumerate(zip(self.members, rows, strict=True)):
            if k not in module.diverged and (bad := _not_finite(train[k], row)) is not None:
                failing.append((k, *bad))
            elif k not in module.diverged and (self.best[k] is None or row[MONITOR] > self.best[k]):
                self.best[k], self.best_epoch[k] = row[MONITOR], epoch
                improved.append(k)
            if not trainer.is_global_zero:
                continue
            write_epoch_row(member.output_dir, {
                "epoch": epoch, "step": trainer.global_step,
                "seconds": round(time.perf_counter() - self._start, 3), **row,
                "train/loss_epoch": train[k], "train/lr": lr})
            member.tracking.log_metrics({**row, "train/loss_epoch": logged[k], "train/lr": lr,
                                         "epoch": float(epoch)}, trainer.global_step, save=True)
        for k, what, value in failing:  # recorded above; the member fails here
            module.note_divergence(k, what, value)
        if not trainer.fast_dev_run:  # a smoke run keeps no checkpoint, as Lightning's
            self._save(trainer, module, {k: epoch for k in improved})
            trainer.strategy.barrier("selected")  # every process sees the selection
        if trainer.progress_bar_callback is None:
            say(self._epoch_line(trainer, module, rows, train, epoch))

    def _save(self, trainer: L.Trainer, module: DownsampleClassifier,
              selected: dict[int, int]) -> None:
        """Each member's checkpoint of the epoch (a lone member's is the job's own: what it
        resumes from; a pack's is made from the pack's)."""
        if module.members == 1:
            self._store(trainer, self.members[0], selected.get(0),
                        lambda path: trainer.save_checkpoint(path, weights_only=False))
            return
        trainer.save_checkpoint(self.job_last, weights_only=False)
        pack = module.last_checkpoint
        for k, member in enumerate(self.members):
            callbacks = {self.state_key: {"best": [self.best[k]],
                                          "best_epoch": [self.best_epoch[k]]},
                         **self.member_callbacks(k, module)}
            checkpoint = member_checkpoint(pack, module.net, k, dict(module.hparams), callbacks)
            self._store(trainer, member, selected.get(k), functools.partial(
                trainer.strategy.checkpoint_io.save_checkpoint, checkpoint))

    @staticmethod
    def _store(trainer: L.Trainer, member: Member, epoch: int | None, write) -> None:
        """``write(path)`` the member's checkpoint: as its ``last.ckpt``, or, when ``epoch`` is its
        best, as its selected checkpoint first and then copied to ``last.ckpt`` (a kill between the
        two leaves the newest checkpoint the selected one), the one selected before removed."""
        target = member.last if epoch is None else member.last.with_name(
            best_checkpoint_name(epoch))
        write(target)
        if not trainer.is_global_zero:
            return
        if epoch is not None:
            _copy(target, member.last)
            for old in target.parent.glob(f"{BEST_PREFIX}*.ckpt"):
                if old != target:
                    old.unlink(missing_ok=True)
        if epoch is not None:  # its trackers told what was written
            member.tracking.checkpoint_saved(target, True)
        member.tracking.checkpoint_saved(member.last, False)

    def _epoch_line(self, trainer: L.Trainer, module: DownsampleClassifier,
                    rows: list[dict[str, float]], train: list[float], epoch: int) -> str:
        seconds = time.perf_counter() - self._epoch_start
        head = f"epoch {epoch}/{trainer.max_epochs}"
        if len(rows) == 1:
            shown = "  ".join(f"{key} {value:.4f}" for key, value in (
                ("train/loss", train[0]), ("val/loss", rows[0]["val/loss"]),
                (MONITOR, rows[0][MONITOR])))
            return f"{head}  {shown}  ({seconds:.1f} s)"
        accuracy = [row[MONITOR] for row in rows if row[MONITOR] == row[MONITOR]]  # not NaN
        span = f"{min(accuracy):.4f}-{max(accuracy):.4f}" if accuracy else "nan"
        diverged = f", {len(module.diverged)} diverged" if module.diverged else ""
        return (f"{head}  pack of {len(rows)}{diverged}: train/loss "
                f"{sum(train) / len(train):.4f} (mean)  {MONITOR} {span}  ({seconds:.1f} s)")
