"""One job: config → data + model → LightningModule → Trainer → results.json."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from downsample_study.config import ConfigError, RunConfig, validate
from downsample_study.data import DATASETS, DownsampleDataModule
from downsample_study.loggers import RunIdentity, create_logger, describe
from downsample_study.models import build_model
from downsample_study.module import DownsampleClassifier
from downsample_study.results import versions, write_results
from downsample_study.shapes import ModelSummary

log = logging.getLogger(__name__)

# Noise that says nothing about this framework's runs.
for message in (
    r".*does not have many workers.*",
    r".*is smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*The `srun` command is available on your system but is not used.*",
):
    warnings.filterwarnings("ignore", message=message)
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage()
)


class EpochProgress(Callback):
    """One line per epoch when there is no interactive progress bar (logs, sweeps, SLURM)."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = trainer.callback_metrics
        shown = "  ".join(
            f"{key} {metrics[key].item():.4f}"
            for key in ("train/loss_epoch", "val/loss", "val/acc_top1")
            if key in metrics
        )
        rank_zero_info(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}  "
            f"({time.perf_counter() - self._start:.1f} s)"
        )


def _trainer_args(cfg: RunConfig) -> dict[str, Any]:
    args = dict(cfg.trainer)
    args.setdefault("enable_progress_bar", sys.stderr.isatty())
    return args


def build_trainer(cfg: RunConfig, output_dir: Path, logger, checkpoint: ModelCheckpoint):
    args = _trainer_args(cfg)
    callbacks = [checkpoint]
    if not args["enable_progress_bar"]:
        callbacks.append(EpochProgress())
    try:
        return L.Trainer(
            **args,
            logger=logger or False,
            callbacks=callbacks,
            default_root_dir=str(output_dir),
        )
    except (MisconfigurationException, TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"trainer: {err}") from None


def run(cfg: DictConfig, output_dir: Path, identity: RunIdentity) -> dict[str, Any]:
    """Train and test one configuration; return (and write) its results."""
    run_cfg = validate(cfg)
    info = DATASETS[run_cfg.dataset.name]
    L.seed_everything(run_cfg.seed, verbose=False)
    net = build_model(run_cfg.model, run_cfg.downsample, info.input_shape, info.num_classes)
    summary = ModelSummary.of(net, info.input_shape)
    rank_zero_info(
        f"{run_cfg.model.name} + {run_cfg.downsample.name} on {run_cfg.dataset.name} "
        f"({'×'.join(map(str, info.input_shape))}):\n{summary.format()}"
    )
    if run_cfg.mode == "summary":
        return {"status": "summary", "params_total": summary.params_total}

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    datamodule = DownsampleDataModule(
        run_cfg.dataset, Path(run_cfg.paths.data_dir), Path(run_cfg.paths.cache_dir),
        run_cfg.seed,
    )
    module = DownsampleClassifier(net, run_cfg.optimizer, info.num_classes, summary)
    identity.config = {**OmegaConf.to_container(cfg, resolve=True), "trainer": run_cfg.trainer}
    logger = create_logger(run_cfg.logger, identity, output_dir)
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-epoch{epoch}",
        auto_insert_metric_name=False,
        monitor="val/acc_top1",
        mode="max",
        save_top_k=1,
        save_last=True,
    )
    trainer = build_trainer(run_cfg, output_dir, logger, checkpoint)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - start
    # Model selection on val/acc_top1; both numbers below come from that checkpoint.
    val = trainer.validate(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]

    results = {
        "status": "completed",
        "config": identity.config,
        "overrides": identity.name,
        "params": {
            "total": summary.params_total,
            "trainable": summary.params_trainable,
            "downsample": summary.params_downsample,
        },
        "flops_forward": summary.flops_forward,
        "val": _split_metrics(val, "val"),
        "test": _split_metrics(test, "test"),
        "epochs": trainer.current_epoch,
        "best_epoch": _best_epoch(checkpoint),
        "train_seconds": round(train_seconds, 3),
        "checkpoint": checkpoint.best_model_path,
        "versions": versions(),
    }
    if trainer.is_global_zero:
        path = write_results(output_dir, results)
        if logger is not None and hasattr(logger, "experiment"):
            _log_summary(logger, results)
        log.info("results: %s", path)
        log.info("metrics: %s", describe(logger))
    return results


def _split_metrics(metrics: dict[str, float], split: str) -> dict[str, float]:
    return {name: float(metrics[f"{split}/{name}"]) for name in ("acc_top1", "acc_top2", "loss")}


def _best_epoch(checkpoint: ModelCheckpoint) -> int | None:
    path = Path(checkpoint.best_model_path or "")
    digits = path.stem.removeprefix("best-epoch")
    return int(digits) if digits.isdigit() else None


def _log_summary(logger, results: dict[str, Any]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger):
        summary = logger.experiment.summary
        for split in ("val", "test"):
            for name, value in results[split].items():
                summary[f"{split}/{name}"] = value
        summary["train_seconds"] = results["train_seconds"]
        summary["best_epoch"] = results["best_epoch"]
