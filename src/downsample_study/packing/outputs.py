"""What each member of a pack writes while the pack trains, as its solo job would: an
``epochs.csv`` row per epoch, its metrics to its own logger, and its checkpoints —
``last.ckpt`` whenever the pack saves, ``best-epoch<N>.ckpt`` for its own best epoch on its
own ``val/acc_top1``. A member's checkpoint is a solo checkpoint (its network, its part of
the optimizer state, its generator, its ``ModelCheckpoint`` state): the solo job resumes
from it and ``DownsampleClassifier.load_from_checkpoint`` loads it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.states import TrainerFn

from downsample_study.console import say
from downsample_study.layout import CHECKPOINTS, LAST
from downsample_study.packing.module import PackedClassifier
from downsample_study.packing.nets import PackedNet
from downsample_study.results import write_epoch_row
from downsample_study.runtime.same_job import SameJob
from downsample_study.training.module import TRAIN_LOSS_SUMS
from downsample_study.training.resume import RngState
from downsample_study.training.trainer import MONITOR, best_checkpoint


@dataclass
class Member:
    """One job of the pack: its seed, folder, solo hyper-parameters and logger."""

    seed: int
    output_dir: Path
    hyper_parameters: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # its job's, resolved (SameJob)
    logger: Logger | None = None
    tracker: Any = None
    checkpoint: ModelCheckpoint = field(init=False)

    def __post_init__(self) -> None:
        self.checkpoint = best_checkpoint(self.output_dir)

    @property
    def last(self) -> Path:
        return self.output_dir / CHECKPOINTS / LAST


def member_checkpoint(pack: dict[str, Any], net: PackedNet, k: int, member: Member,
                      callbacks: dict[str, Any]) -> dict[str, Any]:
    """Member k's solo checkpoint, made from the pack's checkpoint ``pack``."""
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
    ckpt["lr_schedulers"] = []
    ckpt["callbacks"] = callbacks
    ckpt["hparams_name"] = "kwargs"
    ckpt["hyper_parameters"] = member.hyper_parameters
    if TRAIN_LOSS_SUMS in pack:
        ckpt[TRAIN_LOSS_SUMS] = [t[:, k].clone() for t in pack[TRAIN_LOSS_SUMS]]
    return ckpt


def _at_epoch_end(trainer: L.Trainer) -> bool:
    """Whether Lightning's ``ModelCheckpoint`` would save at the training epoch's end (after
    its validation) rather than at the end of a validation pass: the members' checkpoints
    then hold the same loop state as their solo jobs' would."""
    return trainer.check_val_every_n_epoch == 1 and trainer.val_check_interval == 1.0


def _save(trainer: L.Trainer, checkpoint: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)  # atomic (AtomicCheckpointIO)


class MemberOutputs(Callback):
    """Per member: selection on its own validation accuracy, its checkpoints, its
    ``epochs.csv`` rows and its logger's metrics; one console line per epoch for the pack."""

    def __init__(self, members: list[Member], pack_last: Path):
        self.members = members
        self.pack_last = pack_last
        self.best: list[float | None] = [None] * len(members)
        self.best_epoch: list[int | None] = [None] * len(members)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = list(state["best"]), list(state["best_epoch"])
        for k, member in enumerate(self.members):
            if self.best_epoch[k] is not None:
                self._set_best(member, self.best[k], self.best_epoch[k])

    def on_train_start(self, trainer: L.Trainer, module: PackedClassifier) -> None:
        self._start = self._epoch_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, module: PackedClassifier) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, module: PackedClassifier, outputs, batch,
                           batch_idx: int) -> None:
        if batch_idx % trainer.log_every_n_steps:
            return
        means = module.take_loss_window().tolist()
        for member, mean in zip(self.members, means, strict=True):
            if member.logger is not None:
                member.logger.log_metrics({"train/loss": mean,
                                           "epoch": float(trainer.current_epoch + 1)},
                                          step=trainer.global_step)

    def on_validation_end(self, trainer: L.Trainer, module: PackedClassifier) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._rows = module.member_metrics()
        if not _at_epoch_end(trainer):
            self._write(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: PackedClassifier) -> None:
        if _at_epoch_end(trainer) and getattr(self, "_rows", None):
            self._write(trainer, module)

    def _write(self, trainer: L.Trainer, module: PackedClassifier) -> None:
        epoch, rows, self._rows = trainer.current_epoch + 1, self._rows, None
        train = module.mean_train_loss().tolist()
        improved = []
        for k, (member, row) in enumerate(zip(self.members, rows, strict=True)):
            score = row[MONITOR]
            if self.best[k] is None or score > self.best[k]:
                self.best[k], self.best_epoch[k] = score, epoch
                self._set_best(member, score, epoch)
                improved.append(k)
            member.checkpoint.current_score = torch.tensor(score)
            full = {"epoch": epoch, "step": trainer.global_step,
                    "seconds": round(time.perf_counter() - self._start, 3), **row,
                    "train/loss_epoch": train[k]}
            write_epoch_row(member.output_dir, full)
            if member.logger is not None:
                member.logger.log_metrics({**row, "train/loss_epoch": train[k],
                                           "epoch": float(epoch)}, step=trainer.global_step)
        self.save(trainer, module)
        for k in improved:
            member = self.members[k]
            best = Path(member.checkpoint.best_model_path)
            for old in best.parent.glob("best-epoch*.ckpt"):
                if old != best:
                    old.unlink(missing_ok=True)
            tmp = best.with_name(best.name + ".tmp")
            shutil.copyfile(member.last, tmp)
            os.replace(tmp, best)
        accuracy = [row[MONITOR] for row in rows if row[MONITOR] == row[MONITOR]]  # not NaN
        shown = f"{min(accuracy):.4f}-{max(accuracy):.4f}" if accuracy else "nan"
        diverged = f", {len(module.diverged)} diverged" if module.diverged else ""
        say(f"epoch {epoch}/{trainer.max_epochs}  pack of {len(self.members)}{diverged}: "
            f"train/loss {sum(train) / len(train):.4f} (mean)  {MONITOR} {shown}  "
            f"({time.perf_counter() - self._epoch_start:.1f} s)")

    def _set_best(self, member: Member, score: float, epoch: int) -> None:
        checkpoint = member.checkpoint
        path = str(Path(checkpoint.dirpath) / f"best-epoch{epoch}.ckpt")
        checkpoint.best_model_score = checkpoint.kth_value = torch.tensor(score)
        checkpoint.best_model_path = checkpoint.kth_best_model_path = path
        checkpoint.best_k_models = {path: torch.tensor(score)}
        checkpoint.last_model_path = str(member.last)

    def save(self, trainer: L.Trainer, module: PackedClassifier) -> None:
        """The pack's checkpoint (for the pack to resume) and each member's ``last.ckpt``."""
        trainer.save_checkpoint(self.pack_last, weights_only=False)
        pack = module.last_checkpoint
        for k, member in enumerate(self.members):
            same_job = SameJob(member.config, member.output_dir)
            callbacks = {member.checkpoint.state_key: member.checkpoint.state_dict(),
                         RngState().state_key: {"cpu": module.net.generators[k].get_state()},
                         same_job.state_key: same_job.state_dict()}
            _save(trainer, member_checkpoint(pack, module.net, k, member, callbacks),
                  member.last)
