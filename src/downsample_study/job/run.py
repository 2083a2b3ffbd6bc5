"""A job of K ≥ 1 members, built (``build.py``) and run: announce → fit → each member's
selected checkpoint evaluated → recorded in its ``results.json``, as a job of its own."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from downsample_study.config.schema import JobMode
from downsample_study.console import quiet_lightning, say
from downsample_study.data.datamodule import DownsampleDataModule
from downsample_study.data.datasets import ImageDataset
from downsample_study.errors import UserError
from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import enabled
from downsample_study.evaluations.running import run_evaluations, save_figures
from downsample_study.nets.shapes import ModelSummary
from downsample_study.results import (
    Metrics,
    Params,
    Resources,
    Results,
    Status,
    read_epochs,
    write_results,
)
from downsample_study.runtime.locks import is_primary, refuse_script_relaunch
from downsample_study.runtime.slots import Slot
from downsample_study.runtime.stops import fit_to_the_end_or_a_stop
from downsample_study.training.checkpoints import epochs_trained, load
from downsample_study.training.members import Member, MemberOutputs, best_epoch
from downsample_study.training.module import DownsampleClassifier, diverged, plain
from downsample_study.training.tracking import Tracking, run_id_of
from downsample_study.training.trainer import evaluation_trainer

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What a member's selected checkpoint scores: val and test, then each evaluation switched
    on (none in DDP's other processes)."""

    val: Metrics
    test: Metrics
    evaluations: dict[str, Measured] = dataclasses.field(default_factory=dict)


@dataclass
class Job:
    """The members, their module, data and Trainer; ``folder``: the job's own (its
    checkpoint), a lone member's folder or a pack's ``packs/<id>/``."""

    members: list[Member]
    folder: Path
    module: DownsampleClassifier
    dataset: ImageDataset
    slot: Slot | None = None
    pack_id: str | None = None
    datamodule: DownsampleDataModule | None = None
    trainer: L.Trainer | None = None
    evaluator: L.Trainer | None = None  # what measures a member (default: its own settings')
    resumed_from: Path | None = None
    train_seconds: float = 0.0

    @property
    def settings(self) -> Any:
        return self.members[0].settings

    @property
    def pack(self) -> dict[str, Any] | None:
        """What a member's results say of its pack (None: it trained alone)."""
        if len(self.members) == 1:
            return None
        return {"id": self.pack_id, "size": len(self.members),
                "seeds": [member.seed for member in self.members]}

    def run(self) -> list[Results | UserError] | None:
        """Each member's results, or the error it failed with (a diverged member); None for
        ``mode=summary`` (the layer table only)."""
        summary_only = self.settings.mode == JobMode.summary
        if not summary_only:
            self.start_tracking()  # first: its run's console keeps what the job prints
        self.announce()
        if summary_only:
            return None
        self.fit()
        scores = self.score_together()
        return [diverged(*self.module.diverged[k]) if k in self.module.diverged else
                self._outcome(member, scores.get(k)) for k, member in enumerate(self.members)]

    def score_together(self) -> dict[int, tuple[Metrics, Metrics]]:
        """Val and test metrics of each pack member's selected checkpoint (those of members
        that did not diverge), all in the pack: one pass over each split instead of K passes of
        their own, each a Trainer loop (benchmarks/RESULTS.md). The val pass is skipped where
        every member selected its weights at the last validation: its rows are those metrics.
        None for a lone member."""
        live = [k for k in range(len(self.members)) if k not in self.module.diverged]
        if len(self.members) == 1 or not live:
            return {}
        outputs = next(c for c in self.trainer.callbacks if isinstance(c, MemberOutputs))
        rows = {}
        last = outputs.written_epoch
        if last is not None and all(outputs.best_epoch[k] == last for k in live):
            rows["val"] = self._validation_rows()
        for k in live:
            state = load(self.members[k].selected())["state_dict"]
            self.module.net.load_member_state(
                k, {key.removeprefix("net."): value for key, value in state.items()})
        self.datamodule.setup("test")
        settings = dict(self.settings.trainer)
        with quiet_lightning():
            for split in ("val", "test"):  # a validation pass each, the split's batch limit
                if split in rows:
                    continue
                limit = settings.get(f"limit_{split}_batches")
                trainer = evaluation_trainer(
                    {**settings, "limit_val_batches": limit} if limit is not None else settings,
                    self.folder)
                trainer.validate(self.module, dataloaders=self.datamodule.batches(split),
                                 verbose=False)
                rows[split] = self._validation_rows()
        return {k: (Metrics(**rows["val"][k]), Metrics(**rows["test"][k])) for k in live}

    def _validation_rows(self) -> list[dict[str, float]]:
        """Each member's metrics of the module's last validation pass, named as in ``Metrics``."""
        return [{key.removeprefix("val/"): value for key, value in row.items()}
                for row in self.module.validation_rows]

    def _outcome(self, member: Member, scored: tuple[Metrics, Metrics] | None = None
                 ) -> Results | UserError:
        """The member's results (``scored``: its val and test metrics, scored in its pack); or,
        where its selected checkpoint scores a loss or metric that is not finite, the error it
        failed with."""
        evaluation = self.evaluate(member, scored=scored)
        for split in ("val", "test"):
            for name, value in vars(getattr(evaluation, split)).items():
                if not math.isfinite(value):
                    epoch = best_epoch(None if self.trainer.fast_dev_run else member.selected())
                    return diverged(f"{split}/{name} of the selected checkpoint", value,
                                    epoch or self.trainer.current_epoch, self.trainer.global_step)
        return self.record(member, evaluation)

    def announce(self) -> None:
        cfg, shape = self.settings, "×".join(map(str, self.dataset.input_shape))
        alone = len(self.members) == 1
        what = "" if alone else (f": a pack of {len(self.members)} (seeds "
                                 f"{', '.join(str(m.seed) for m in self.members)}), one "
                                 f"network in one process")
        say(f"{cfg.model.name} + {cfg.downsample.name} on {cfg.dataset.name} ({shape})"
            f"{what}:\n{self.module.summary.format()}")

    def start_tracking(self) -> None:
        """Start each member's tracker run, its identity completed (config, run id kept across
        attempts, the epochs logged up to the checkpoint it resumes from)."""
        earlier_steps = None if self.resumed_from is None else (
            load(self.resumed_from)["global_step"])
        summary = self.module.summary
        for member in self.members:
            resumed = earlier_steps is not None
            earlier = [row for row in read_epochs(member.output_dir)
                       if row["step"] <= earlier_steps] if resumed else []
            member.identity = dataclasses.replace(
                member.identity, config=member.config, resumed=resumed, earlier_epochs=earlier,
                run_id=run_id_of(member.output_dir, resumed) if is_primary() else None,
                alongside=len(self.members) > 1)
            member.tracking = Tracking.start(member.settings.logger, member.identity,
                                             member.output_dir)
            # in the runs' config, so runs can be grouped so
            member.tracking.log_params({"params": plain(params_of(summary)),
                                        "flops_forward": summary.flops_forward})

    def fit(self) -> None:
        """Train, from an earlier attempt's checkpoint if any; a signal stops it at a step."""
        refuse_script_relaunch(self.trainer)
        fit_to_the_end_or_a_stop(self)

    def stopped_at(self) -> dict[str, int] | None:
        """How far training got: the epoch it was in (from 1; the last one once training is
        done) and the optimizer steps done."""
        if self.trainer is None:
            return None
        last, epoch = self.trainer.max_epochs, self.trainer.current_epoch + 1
        return {"epoch": min(epoch, last) if last and last > 0 else epoch,
                "step": self.trainer.global_step}

    def evaluate(self, member: Member, module: DownsampleClassifier | None = None,
                 scored: tuple[Metrics, Metrics] | None = None) -> Evaluation:
        """Val and test metrics of ``member``'s selected checkpoint (or ``module``; a smoke run's
        last weights; ``scored``: those metrics, from its pack), then its evaluations in the
        main process."""
        if scored is not None and not enabled(member.settings.evaluation):
            return Evaluation(*scored)
        if module is None and self.trainer is not None and self.trainer.fast_dev_run:
            module = self.module
        if module is None:
            module = DownsampleClassifier.load_from_checkpoint(
                member.selected(), map_location=self.trainer.strategy.root_device)
        if scored is not None:
            return Evaluation(*scored, self.measure(member, module))
        with quiet_lightning():  # the evaluation Trainer's lines, once per member
            trainer = self.evaluator or evaluation_trainer(member.settings.trainer,
                                                           member.output_dir)
            val = trainer.validate(module, datamodule=self.datamodule, verbose=False)
            test = trainer.test(module, datamodule=self.datamodule, verbose=False)
        found = self.measure(member, module) if trainer.is_global_zero else {}
        return Evaluation(_metrics(val[0], "val"), _metrics(test[0], "test"), found)

    def measure(self, member: Member, module: DownsampleClassifier,
                save: bool = True) -> dict[str, Measured]:
        """The member's evaluations of ``module``, their figures saved in its folder and
        logged (``save``)."""
        cfg = member.settings
        self.datamodule.setup("test")  # a no-op unless the test ran in other processes
        info = self.dataset
        data = EvaluationData(
            self.datamodule.splits["test"], info.mean, info.std, cfg.dataset.eval_batch_size,
            info.num_classes, member.seed,
            title=f"{cfg.model.name} + {cfg.downsample.name} on {cfg.dataset.name}",
            initial=functools.partial(_initial_net, module, member.seed))
        found = run_evaluations(module.net, data, cfg.evaluation, say=say)
        if not save:
            return found
        step = self.trainer.global_step if self.trainer is not None else 0
        for name, path in save_figures(found, member.output_dir).items():
            evaluation, figure = name.split("/")
            member.tracking.log_figure(path.stem, found[evaluation].figures[figure], path, step)
        return found

    def record(self, member: Member, evaluation: Evaluation) -> Results:
        """The member's results, written to its ``results.json`` (by the main process)."""
        trainer, summary, identity = self.trainer, self.module.summary, member.identity
        selected = None if trainer.fast_dev_run else member.selected()
        results = Results(
            status=Status.completed, config=member.config, overrides=identity.name,
            group=identity.group, params=params_of(summary), flops_forward=summary.flops_forward,
            val=evaluation.val, test=evaluation.test,
            evaluations={name: measured.record()
                         for name, measured in evaluation.evaluations.items()},
            epochs=epochs_trained(trainer.current_epoch, self.folder),
            best_epoch=best_epoch(selected), train_seconds=round(self.train_seconds, 3),
            checkpoint=str(selected or ""),
            resumed_from=str(self.resumed_from) if self.resumed_from else None,
            smoke_test=bool(trainer.fast_dev_run), pack=self.pack,
            trackers=member.tracking.settings(),
            resources=Resources(
                slot=self.slot.index if self.slot else None,
                device=str(trainer.strategy.root_device), processes=trainer.world_size,
                threads=self.slot.threads if self.slot else torch.get_num_threads(),
                threads_at_end=torch.get_num_threads(),
                channels_last=self.module.channels_last, precision=str(trainer.precision)))
        if trainer.is_global_zero:
            path = write_results(member.output_dir, results)
            member.tracking.log_summary(results, member.output_dir)
            log.info("%s", test_line(results.best_epoch, evaluation, results.smoke_test))
            log.info("results: %s", path)
            log.info("metrics: %s", member.tracking.describe())
        return results


def test_line(epoch: int | None, evaluation: Evaluation, smoke_test: bool = False) -> str:
    test = evaluation.test
    which = ("the last weights of a smoke run (trainer.fast_dev_run)" if smoke_test else
             f"the checkpoint of epoch {'?' if epoch is None else epoch}")
    return (f"test, on {which} (val acc_top1 {evaluation.val.acc_top1:.4f}): acc_top1 "
            f"{test.acc_top1:.4f}  acc_top2 {test.acc_top2:.4f}  loss {test.loss:.4f}")


def _initial_net(module: DownsampleClassifier, seed: int) -> torch.nn.Module:
    """The network as ``seed`` initialises it, before training, in eval mode on ``module``'s
    device (one network of a pack: its member's)."""
    hparams = {key: value for key, value in module.hparams.items() if key != "seeds"}
    fresh = DownsampleClassifier(**hparams, seeds=[seed])
    return fresh.net.eval().to(module.device)


def _metrics(metrics: dict[str, float], split: str) -> Metrics:
    return Metrics(**{name: float(metrics[f"{split}/{name}"])
                      for name in ("acc_top1", "acc_top2", "loss")})


def params_of(summary: ModelSummary) -> Params:
    return Params(summary.params_total, summary.params_trainable, summary.params_downsample)
