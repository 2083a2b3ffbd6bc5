"""The one composition root of a job: its K ≥ 1 members (a pack's seeds, or one job alone)
and what trains them: data + model → LightningModule → Trainer, with the runtime's callbacks."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig

from downsample_study.config.schema import JobMode
from downsample_study.config.validate import RunConfig, validate
from downsample_study.console import say
from downsample_study.data.datamodule import DownsampleDataModule
from downsample_study.data.datasets import DATASETS
from downsample_study.errors import ConfigError
from downsample_study.job.run import Job
from downsample_study.layout import CHECKPOINTS, LAST
from downsample_study.runtime.locks import is_primary
from downsample_study.runtime.same_job import SameJob
from downsample_study.runtime.slots import ShareIdleCores, Slot
from downsample_study.runtime.stops import StopAtStepBoundary
from downsample_study.training.checkpoints import RngState, resume_point
from downsample_study.training.members import Member, MemberOutputs
from downsample_study.training.module import DownsampleClassifier, hyper_parameters
from downsample_study.training.optimizers import unfused_to_clip
from downsample_study.training.speed import keep_freed_memory, use_tf32_matmuls
from downsample_study.training.tracking import RunIdentity
from downsample_study.training.trainer import build_trainer

# optimizers whose update of a parameter element depends on that element alone
ELEMENTWISE_OPTIMIZERS = ("adam", "sgd")


def member(cfg: DictConfig, output_dir: Path, identity: RunIdentity | None = None) -> Member:
    """A job's member (a job alone: its only one) as ``cfg`` composes it, in ``output_dir``."""
    identity = identity or RunIdentity(name="default", tags=[str(cfg.dataset.name)])
    return Member(int(cfg.seed), Path(output_dir), identity, cfg)


def validated(one: Member, slot: Slot | None = None) -> Member:
    """``one`` with its config validated (a ``ConfigError`` naming the key), its Trainer on
    the slot's device, and its config resolved once, for its results and checkpoints."""
    settings = validate(one.cfg)
    if slot is not None:
        settings.trainer = {**settings.trainer, **slot.trainer_settings(settings.trainer)}
    return dataclasses.replace(one, settings=settings,
                               config={**settings.resolved, "trainer": settings.trainer})


def refusal(settings: RunConfig) -> str | None:
    """Why a job of ``settings`` cannot have several members (None: it can)."""
    trainer = settings.trainer
    if settings.mode != JobMode.train:
        return f"mode={settings.mode.value}: only training jobs are packed"
    if trainer.get("gradient_clip_val") and trainer.get("gradient_clip_algorithm",
                                                         "norm") == "norm":
        return ("trainer.gradient_clip_val: clipping by the global gradient norm would "
                "couple the members of a pack (one norm over all of them); clip by value "
                "(trainer.gradient_clip_algorithm=value) or run without packing")
    if settings.optimizer.name not in ELEMENTWISE_OPTIMIZERS:
        return (f"optimizer={settings.optimizer.name}: a pack needs an optimizer that updates "
                f"each parameter on its own ({', '.join(ELEMENTWISE_OPTIMIZERS)})")
    if trainer.get("fast_dev_run"):
        return "trainer.fast_dev_run: smoke tests run alone (without hydra/sweeper=packed)"
    devices = trainer.get("devices", 1)
    one_device = str(devices) in ("1", "auto") or (isinstance(devices, list)
                                                   and len(devices) == 1)  # a slot's GPU
    if not one_device or trainer.get("num_nodes", 1) != 1:
        return (f"trainer.devices={devices}: a pack trains in one process on one device; "
                f"pack on one device per job (hydra/launcher=parallel or slurm spread packs)")
    if settings.speed.compile.value != "none":
        return "speed.compile: packs are not compiled yet; run them with speed.compile=none"
    if settings.callbacks:
        return (f"callbacks.{next(iter(settings.callbacks))}: Lightning's callbacks see a pack "
                f"as one network, not each member; run them without hydra/sweeper=packed")
    return None


def chosen_callbacks(nodes: dict[str, Any]) -> list[L.Callback]:
    """The ``callbacks.*`` a job chose, built (Hydra's instantiate); a ``ConfigError`` names
    one that is not a buildable Lightning callback."""
    built = []
    for name, node in nodes.items():
        target = node.get("_target_") if isinstance(node, dict) else None
        if not target:
            raise ConfigError(f"callbacks.{name}: no _target_ (the callback's class, e.g. "
                              f"lightning.pytorch.callbacks.EarlyStopping)")
        try:
            callback = instantiate(node)
        except Exception as err:  # Hydra wraps the class's own error: its first line says why
            why = str(err.__cause__ or err).strip().splitlines()[0]
            raise ConfigError(f"callbacks.{name}: cannot build {target}: {why}") from None
        if not isinstance(callback, L.Callback):
            raise ConfigError(f"callbacks.{name}: {target} is not a Lightning callback")
        if isinstance(callback, LearningRateMonitor):  # it needs the Trainer's logger
            raise ConfigError(f"callbacks.{name}: each member logs the learning rate already, "
                              f"as train/lr (epochs.csv and every logger); the Trainer has no "
                              f"logger for LearningRateMonitor")
        built.append(callback)
    return built


def build_job(members: list[Member], folder: Path, slot: Slot | None = None,
              pack_id: str | None = None) -> Job:
    """Every part of the job of ``members`` (their configs differ in ``seed`` alone) with its
    own checkpoint in ``folder``; raises a ``UserError`` for bad input."""
    members = [validated(one, slot) for one in members]
    # a lone member's checkpoints are its job's
    folder = members[0].output_dir if len(members) == 1 else Path(folder)
    first = members[0].settings
    if len(members) > 1 and (reason := refusal(first)) is not None:
        raise ConfigError(reason)
    dataset = DATASETS[first.dataset.name].configured(first.dataset)
    optimizer = unfused_to_clip(first.optimizer, first.trainer)
    module = DownsampleClassifier(
        **hyper_parameters(first, dataset.input_shape, dataset.num_classes, optimizer),
        seeds=[m.seed for m in members])
    job = Job(members, folder, module, dataset, slot, pack_id)
    if first.mode == JobMode.summary:
        return job
    use_tf32_matmuls()
    keep_freed_memory()
    paths = first.paths
    job.datamodule = DownsampleDataModule(first.dataset, Path(paths.data_dir),
                                          Path(paths.cache_dir), [m.seed for m in members])
    job.resumed_from = resume_point(folder, tidy=is_primary())
    last = folder / CHECKPOINTS / LAST
    callbacks = [MemberOutputs(members, last, functools.partial(_member_callbacks, members)),
                 RngState(), StopAtStepBoundary(last), SameJob(members[0].config, folder)]
    if slot is not None:  # a slot exists only when jobs run side by side
        callbacks.append(ShareIdleCores(slot))
    callbacks += chosen_callbacks(first.callbacks)
    job.trainer = build_trainer(first.trainer, folder, callbacks)
    asked, runs_as = str(first.trainer.get("precision")), str(job.trainer.precision)
    if asked in ("16", "16-mixed") and runs_as != "16-mixed":  # no fp16 AMP on this device
        say(f"trainer.precision={asked}: {job.trainer.strategy.root_device.type} has no fp16 "
            f"mixed precision; the job trains in {runs_as} (trainer.precision={runs_as} says "
            f"so)")
    return job


def _member_callbacks(members: list[Member], k: int, module: DownsampleClassifier) -> dict:
    """Member k's states of the callbacks a job of its own has (its checkpoint's)."""
    same_job = SameJob(members[k].config, members[k].output_dir)
    generator = module.net.generators[k]  # a solo job draws its masks from the default one
    rng = ({"cpu": generator.get_state()} if generator.device.type == "cpu" else
           {"cpu": torch.get_rng_state(), generator.device.type: [generator.get_state()]})
    return {RngState().state_key: rng, same_job.state_key: same_job.state_dict()}
