"""One job, and the one place that builds it (``build_job``): config → data + model →
LightningModule → Trainer → results; ``Job.run`` reads announce → fit → evaluate → record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from downsample_study.analysis.featuremaps import feature_map_figure
from downsample_study.analysis.shift import shift_metrics, shift_robustness
from downsample_study.config.schema import JobMode
from downsample_study.config.validate import RunConfig, validate
from downsample_study.console import say
from downsample_study.data.batches import TensorBatches
from downsample_study.data.datamodule import DownsampleDataModule
from downsample_study.data.datasets import DATASETS, ImageDataset
from downsample_study.layout import FEATURE_MAPS_FILE
from downsample_study.nets.models import build_model
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
from downsample_study.runtime.same_job import SameJob
from downsample_study.runtime.slots import ShareIdleCores, Slot
from downsample_study.runtime.stops import StopAtStepBoundary, fit_to_the_end_or_a_stop
from downsample_study.storage import atomic_write
from downsample_study.training.checkpoints import load, resume_point
from downsample_study.training.epochs import EpochMetricsWriter
from downsample_study.training.loggers import LOGGERS, create_logger
from downsample_study.training.module import (
    DownsampleClassifier,
    plain,
    solo_hyper_parameters,
)
from downsample_study.training.optimizers import unfuse_to_clip
from downsample_study.training.resume import LAST_CHECKPOINT, RngState, epochs_trained
from downsample_study.training.tracking import RunIdentity, Tracker, run_id_of
from downsample_study.training.trainer import best_checkpoint, best_epoch, build_trainer

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What the selected checkpoint scores (``shift`` is None when switched off)."""

    val: Metrics
    test: Metrics
    shift: dict[str, Any] | None


@dataclass
class Job:
    config: RunConfig
    dataset: ImageDataset
    net: nn.Module
    summary: ModelSummary
    output_dir: Path
    identity: RunIdentity
    slot: Slot | None = None
    # the training parts, built for mode=train
    module: DownsampleClassifier | None = None
    datamodule: DownsampleDataModule | None = None
    tracker: Tracker | None = None
    logger: Logger | None = None
    checkpoint: ModelCheckpoint | None = None
    trainer: L.Trainer | None = None
    resumed_from: Path | None = None
    train_seconds: float = 0.0
    pack: dict[str, Any] | None = None  # the pack it trained in (packing/job.py)

    def run(self) -> Results | None:
        """Train, evaluate and record the job; None for ``mode=summary`` (the table only)."""
        self.announce()
        if self.config.mode == JobMode.summary:
            return None
        self.fit()
        return self.record(self.evaluate())

    def announce(self) -> None:
        cfg, shape = self.config, "×".join(map(str, self.dataset.input_shape))
        say(f"{cfg.model.name} + {cfg.downsample.name} on {cfg.dataset.name} "
                       f"({shape}):\n{self.summary.format()}")

    def fit(self) -> None:
        """Train (from the checkpoint of an earlier attempt, if there is one); a stop asked
        for by a signal ends it at a step boundary with ``Interrupted``."""
        refuse_script_relaunch(self.trainer)
        fit_to_the_end_or_a_stop(self)

    def params(self) -> Params:
        return params_of(self.summary)

    def stopped_at(self) -> dict[str, int] | None:
        return stopped_at(self.trainer)

    def evaluate(self, ckpt_path: str | None = "best") -> Evaluation:
        """Validation and test metrics of the checkpoint selected on ``val/acc_top1`` (None:
        the module as it is), then (in the main process) shift robustness and the feature-map
        figure. They go to the run's summary, not to its history: its epochs are over."""
        trainer, module, data = self.trainer, self.module, self.datamodule
        if trainer.fast_dev_run:  # a smoke run keeps no checkpoint: its last weights
            ckpt_path = None
        loggers, trainer.loggers = trainer.loggers, []
        try:
            val = trainer.validate(module, datamodule=data, ckpt_path=ckpt_path, verbose=False)
            test = trainer.test(module, datamodule=data, ckpt_path=ckpt_path, verbose=False)
        finally:
            trainer.loggers = loggers
        shift = self._after_test() if trainer.is_global_zero else None
        return Evaluation(_metrics(val[0], "val"), _metrics(test[0], "test"), shift)

    def _after_test(self) -> dict[str, Any] | None:
        evaluation, step = self.config.evaluation, self.trainer.global_step
        self.datamodule.setup("test")  # a no-op unless the test ran in other processes
        test, info = self.datamodule.splits["test"], self.dataset
        shift = None
        if evaluation.shift:
            batches = TensorBatches(test, self.config.dataset.eval_batch_size, info.mean,
                                    info.std)
            shift = shift_robustness(self.module.net, batches, evaluation)
            shown = "  ".join(f"{key.removeprefix('test/')} {value:.4f}"
                              for key, value in shift_metrics(shift).items())
            say(f"shifts of up to ±{evaluation.shift_max} px: {shown}")
        if evaluation.feature_maps:
            cfg = self.config
            figure = feature_map_figure(
                self.module.net, test, info.mean, info.std, evaluation.feature_map_images,
                evaluation.feature_map_channels,
                title=f"{cfg.model.name} + {cfg.downsample.name} on {cfg.dataset.name}",
            )
            path = self.output_dir / FEATURE_MAPS_FILE
            with atomic_write(path, "wb") as f:
                figure.savefig(f, format="png", dpi=110)
            if self.logger is not None:
                self.tracker.log_figure(self.logger, "feature_maps", figure, path, step)
        return shift

    def record(self, evaluation: Evaluation) -> Results:
        """The job's results, written to ``results.json`` (by the main process)."""
        trainer, summary = self.trainer, self.summary
        results = Results(
            status=Status.completed,
            config=self.identity.config,
            overrides=self.identity.name,
            group=self.identity.group,
            params=self.params(),
            flops_forward=summary.flops_forward,
            val=evaluation.val,
            test=evaluation.test,
            shift=evaluation.shift,
            epochs=epochs_trained(trainer.current_epoch, self.output_dir),
            best_epoch=best_epoch(self.checkpoint),
            train_seconds=round(self.train_seconds, 3),
            checkpoint=self.checkpoint.best_model_path,
            resumed_from=str(self.resumed_from) if self.resumed_from else None,
            smoke_test=bool(trainer.fast_dev_run),
            pack=self.pack,
            resources=Resources(
                slot=self.slot.index if self.slot else None,
                device=str(trainer.strategy.root_device),
                processes=trainer.world_size,
                threads=self.slot.threads if self.slot else torch.get_num_threads(),
                threads_at_end=torch.get_num_threads(),
                channels_last=self.module.channels_last,
            ),
        )
        if trainer.is_global_zero:
            path = write_results(self.output_dir, results)
            if self.logger is not None:
                self.tracker.log_summary(self.logger, results, self.output_dir)
            log.info("%s", test_line(results.best_epoch, evaluation, results.smoke_test))
            log.info("results: %s", path)
            log.info("metrics: %s", self.tracker.describe(self.logger))
        return results


def test_line(epoch: int | None, evaluation: Evaluation, smoke_test: bool = False) -> str:
    test = evaluation.test
    which = ("the last weights of a smoke run (trainer.fast_dev_run)" if smoke_test else
             f"the checkpoint of epoch {'?' if epoch is None else epoch}")
    return (f"test, on {which} (val acc_top1 {evaluation.val.acc_top1:.4f}): acc_top1 "
            f"{test.acc_top1:.4f}  acc_top2 {test.acc_top2:.4f}  loss {test.loss:.4f}")


def _metrics(metrics: dict[str, float], split: str) -> Metrics:
    return Metrics(**{name: float(metrics[f"{split}/{name}"])
                      for name in ("acc_top1", "acc_top2", "loss")})


def build_job(cfg: DictConfig, output_dir: Path, identity: RunIdentity | None = None,
              slot: Slot | None = None) -> Job:
    """Every part of the job ``cfg`` describes; raises a ``UserError`` for bad input."""
    run_cfg = validate(cfg)
    if slot is not None:
        run_cfg.trainer = {**run_cfg.trainer, **slot.trainer_settings(run_cfg.trainer)}
    dataset = DATASETS[run_cfg.dataset.name]
    L.seed_everything(run_cfg.seed, verbose=False)
    net = build_model(run_cfg.model, run_cfg.downsample, dataset.input_shape,
                      dataset.num_classes)
    summary = ModelSummary.of(net, dataset.input_shape)
    identity = identity or RunIdentity(name="default", tags=[run_cfg.dataset.name])
    job = Job(run_cfg, dataset, net, summary, Path(output_dir), identity, slot)
    if run_cfg.mode == JobMode.summary:
        return job

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    unfuse_to_clip(run_cfg.optimizer, run_cfg.trainer)
    paths = run_cfg.paths
    job.datamodule = DownsampleDataModule(run_cfg.dataset, Path(paths.data_dir),
                                          Path(paths.cache_dir), run_cfg.seed)
    job.module = DownsampleClassifier(
        **solo_hyper_parameters(run_cfg, dataset.input_shape, dataset.num_classes),
        net=net, summary=summary,
    )
    job.resumed_from = resume_point(job.output_dir, tidy=is_primary())
    job.tracker, job.logger = start_tracking(identity, cfg, run_cfg, job.output_dir, summary,
                                             job.resumed_from, primary=is_primary())
    job.checkpoint = best_checkpoint(job.output_dir)
    callbacks = [job.checkpoint, EpochMetricsWriter(job.output_dir), RngState(),
                 StopAtStepBoundary(job.output_dir / LAST_CHECKPOINT),
                 SameJob(identity.config, job.output_dir)]
    if slot is not None:  # a slot exists only when jobs run side by side
        callbacks.append(ShareIdleCores(slot))
    job.trainer = build_trainer(run_cfg.trainer, job.output_dir, job.logger, callbacks)
    return job


def params_of(summary: ModelSummary) -> Params:
    return Params(summary.params_total, summary.params_trainable, summary.params_downsample)


def start_tracking(identity: RunIdentity, cfg: DictConfig, run_cfg: RunConfig,
                   output_dir: Path, summary: ModelSummary, resumed_from: Path | None,
                   primary: bool = True) -> tuple[Tracker, Logger | None]:
    """The job's tracker run: its identity completed (config, run id kept across attempts,
    the epochs an earlier attempt logged up to ``resumed_from``) and its logger started."""
    identity.config = {**OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                       "trainer": run_cfg.trainer}
    identity.resumed = resumed_from is not None
    identity.run_id = run_id_of(output_dir, identity.resumed) if primary else None
    if resumed_from is not None:
        done = load(resumed_from)["global_step"]
        identity.earlier_epochs = [r for r in read_epochs(output_dir) if r["step"] <= done]
    tracker = LOGGERS[run_cfg.logger.name]
    logger = create_logger(run_cfg.logger, identity, output_dir)
    if logger is not None:  # in the run's config, so runs can be grouped by them
        tracker.start(logger, {"params": plain(params_of(summary)),
                               "flops_forward": summary.flops_forward})
    return tracker, logger


def stopped_at(trainer: L.Trainer | None) -> dict[str, int] | None:
    """How far training got: the epoch it was in (from 1; the last one once training is
    done) and the optimizer steps done."""
    if trainer is None:
        return None
    last = trainer.max_epochs
    epoch = trainer.current_epoch + 1
    return {"epoch": min(epoch, last) if last and last > 0 else epoch,
            "step": trainer.global_step}


def build_evaluation(cfg: DictConfig, module: DownsampleClassifier, output_dir: Path,
                     device: str = "cpu", trainer: L.Trainer | None = None) -> Job:
    """The parts that evaluate a trained module (a finished job's checkpoint) without
    training: its job's config ``cfg`` (with the paths and evaluation settings to use), its
    data, and a Trainer that logs and saves nothing (``trainer``, or one on ``device``)."""
    run_cfg = validate(cfg)
    dataset = DATASETS[run_cfg.dataset.name]
    job = Job(run_cfg, dataset, module.net, module.summary, Path(output_dir),
              RunIdentity(name="evaluation", tags=[]), module=module, tracker=LOGGERS["none"])
    paths = run_cfg.paths
    job.datamodule = DownsampleDataModule(run_cfg.dataset, Path(paths.data_dir),
                                          Path(paths.cache_dir), run_cfg.seed)
    if trainer is None:
        trainer = L.Trainer(accelerator="cpu" if device == "cpu" else "gpu", devices=1,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=str(output_dir))
    job.trainer = trainer
    return job
