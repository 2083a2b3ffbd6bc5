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
from downsample_study.data import DATASETS, DatasetInfo, DownsampleDataModule
from downsample_study.epochs import EpochMetricsWriter
from downsample_study.featuremaps import FEATURE_MAPS_FILE, feature_map_figure, save_and_log
from downsample_study.loggers import RunIdentity, create_logger, describe
from downsample_study.models import build_model
from downsample_study.module import DownsampleClassifier
from downsample_study.results import versions, write_results
from downsample_study.resume import RngState, epochs_trained, last_checkpoint
from downsample_study.shapes import ModelSummary
from downsample_study.shift import shift_metrics, shift_robustness
from downsample_study.slots import ShareIdleCores, Slot
from downsample_study.speed import NoProfiler, skip_unloadable_nvml_probe
from downsample_study.sweep import refuse_script_relaunch

log = logging.getLogger(__name__)

# Noise that says nothing about this framework's runs.
for message in (
    r".*does not have many workers.*",
    r".*is smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*The `srun` command is available on your system but is not used.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # a resumed job's own folder
):
    warnings.filterwarnings("ignore", message=message)
# Lightning's lines about loading the selected checkpoint for the validation and test passes
# (four per job; a resumed job says "resuming from" itself), and its litlogger advert.
_QUIET_INFO = ("litlogger", "Restoring states from the checkpoint path",
               "Loaded model weights from the checkpoint")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not any(text in record.getMessage() for text in _QUIET_INFO)
)
skip_unloadable_nvml_probe()


class EpochProgress(Callback):
    """One line per epoch when there is no interactive progress bar (logs, sweeps, SLURM)."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = {"train/loss": module.mean_train_loss(), **trainer.callback_metrics}
        shown = "  ".join(
            f"{key} {metrics[key].item():.4f}"
            for key in ("train/loss", "val/loss", "val/acc_top1")
            if key in metrics
        )
        rank_zero_info(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}  "
            f"({time.perf_counter() - self._start:.1f} s)"
        )


def _trainer_args(cfg: RunConfig) -> dict[str, Any]:
    args = dict(cfg.trainer)
    args.setdefault("enable_progress_bar", sys.stderr.isatty())
    if args.get("profiler") is None:
        args["profiler"] = NoProfiler()
    return args


def build_trainer(
    cfg: RunConfig, output_dir: Path, logger, checkpoint: ModelCheckpoint, slot: Slot | None = None
):
    args = _trainer_args(cfg)
    callbacks = [checkpoint, EpochMetricsWriter(output_dir), RngState()]
    if not args["enable_progress_bar"]:
        callbacks.append(EpochProgress())
    if slot is not None:  # a slot exists only when jobs run side by side
        callbacks.append(ShareIdleCores(slot))
    try:
        return L.Trainer(
            **args,
            logger=logger or False,
            callbacks=callbacks,
            default_root_dir=str(output_dir),
        )
    except (MisconfigurationException, TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"trainer: {err}") from None


def run(
    cfg: DictConfig, output_dir: Path, identity: RunIdentity, slot: Slot | None = None
) -> dict[str, Any]:
    """Train and test one configuration; return (and write) its results.

    An interrupted earlier run of the job (``checkpoints/last.ckpt``) is resumed.
    """
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
    module = DownsampleClassifier(
        net, run_cfg.optimizer, info.num_classes, summary, run_cfg.speed
    )
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
    trainer = build_trainer(run_cfg, output_dir, logger, checkpoint, slot)
    refuse_script_relaunch(trainer)

    resumed_from = last_checkpoint(output_dir)
    if resumed_from is not None:
        rank_zero_info(f"resuming from {resumed_from}")
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resumed_from)
    train_seconds = time.perf_counter() - start
    # Model selection on val/acc_top1; both numbers below come from that checkpoint.
    val = trainer.validate(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    shift = None
    if trainer.is_global_zero:
        shift = _evaluate_checkpoint(run_cfg, module.net, datamodule, info, output_dir, logger,
                                     trainer.global_step)

    results = {
        "status": "completed",
        "config": identity.config,
        "overrides": identity.name,
        "group": identity.group,  # the sweep's W&B group; the report logs into it
        "params": {
            "total": summary.params_total,
            "trainable": summary.params_trainable,
            "downsample": summary.params_downsample,
        },
        "flops_forward": summary.flops_forward,
        "val": _split_metrics(val, "val"),
        "test": _split_metrics(test, "test"),
        "shift": shift,
        "epochs": epochs_trained(trainer.current_epoch, output_dir),
        "best_epoch": _best_epoch(checkpoint),
        "train_seconds": round(train_seconds, 3),
        "checkpoint": checkpoint.best_model_path,
        "resumed_from": str(resumed_from) if resumed_from else None,
        "resources": {
            "slot": slot.index if slot else None,
            "device": str(trainer.strategy.root_device),
            "processes": trainer.world_size,
            "threads": slot.threads if slot else torch.get_num_threads(),  # its share
            "threads_at_end": torch.get_num_threads(),  # more if idle slots' cores were free
            "channels_last": module.channels_last,
        },
        "versions": versions(),
    }
    if trainer.is_global_zero:
        path = write_results(output_dir, results)
        if logger is not None and hasattr(logger, "experiment"):
            _log_summary(logger, results)
        best = results["best_epoch"]  # 0-based, as Lightning counts; shown as the epoch lines
        log.info("test, on the checkpoint of epoch %s (val acc_top1 %.4f): acc_top1 %.4f  "
                 "acc_top2 %.4f  loss %.4f", "?" if best is None else best + 1,
                 results["val"]["acc_top1"],
                 *(results["test"][key] for key in ("acc_top1", "acc_top2", "loss")))
        log.info("results: %s", path)
        log.info("metrics: %s", describe(logger))
    return results


def _evaluate_checkpoint(
    cfg: RunConfig, net, datamodule: DownsampleDataModule, info: DatasetInfo, output_dir: Path,
    logger, step: int,
) -> dict[str, Any] | None:
    """After the test pass, on the selected checkpoint: shift robustness (returned, and logged
    as ``test/shift_*``) and the feature-map figure (``feature_maps.png``, and logged)."""
    evaluation = cfg.evaluation
    datamodule.setup("test")  # a no-op unless the test ran in other processes (ddp_spawn)
    test = datamodule.splits["test"]
    shift = None
    if evaluation.shift:
        shift = shift_robustness(net, test, info.mean, info.std, evaluation,
                                 cfg.dataset.eval_batch_size)
        shown = "  ".join(f"{key.removeprefix('test/')} {value:.4f}"
                          for key, value in shift_metrics(shift).items())
        rank_zero_info(f"shifts of up to ±{evaluation.shift_max} px: {shown}")
    if evaluation.feature_maps:
        figure = feature_map_figure(
            net, test, info.mean, info.std, evaluation.feature_map_images,
            evaluation.feature_map_channels,
            title=f"{cfg.model.name} + {cfg.downsample.name} on {cfg.dataset.name}",
        )
        save_and_log(figure, output_dir / FEATURE_MAPS_FILE, logger, step)
    if logger is not None and shift is not None:
        logger.log_metrics(shift_metrics(shift), step=step)
        logger.finalize("success")  # the test pass already closed CSV/TensorBoard writers
    return shift


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
