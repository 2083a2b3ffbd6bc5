"""The job that trains a pack: its members' solo jobs, built and recorded as they would be
alone, trained as one network in one process.

Each member is the job the sweep would have run for its seed: its folder (named from its own
overrides), its config, its network initialised from its own seed, its data order and
dropout generator, its W&B run with the solo job's name, group and job type. After the pack
trains, each member is evaluated and recorded by the solo code (``Job.evaluate``,
``Job.record``) from its own selected checkpoint; its ``results.json`` carries ``pack``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from downsample_study.config.validate import RunConfig, validate
from downsample_study.console import quiet_lightning, say
from downsample_study.data.datasets import DATASETS
from downsample_study.errors import ConfigError, JobBusy, OtherJobError
from downsample_study.job import build_evaluation, start_tracking, stopped_at
from downsample_study.layout import CHECKPOINTS, LAST, job_dir_name
from downsample_study.nets.models import build_model
from downsample_study.nets.shapes import ModelSummary
from downsample_study.packing.checks import refusal
from downsample_study.packing.data import PackedDataModule
from downsample_study.packing.module import PackedClassifier
from downsample_study.packing.outputs import Member, MemberOutputs
from downsample_study.results import Results
from downsample_study.runtime.locks import job_lock
from downsample_study.runtime.same_job import SameJob, completed_results
from downsample_study.runtime.slots import ShareIdleCores, Slot
from downsample_study.runtime.stops import StopAtStepBoundary, fit_to_the_end_or_a_stop
from downsample_study.storage import write_yaml
from downsample_study.sweeps.naming import override_dirname, override_key
from downsample_study.training.checkpoints import resume_point
from downsample_study.training.module import DownsampleClassifier, solo_hyper_parameters
from downsample_study.training.optimizers import unfuse_to_clip
from downsample_study.training.tracking import RunIdentity
from downsample_study.training.trainer import evaluation_trainer, pack_trainer

log = logging.getLogger("downsample_study")

PACK_KEYS = ("pack.seeds", "pack.id")  # set by the sweeper on a pack's job


@dataclass
class MemberJob:
    """A member's solo job: its composed config, validated config, overrides and identity."""

    cfg: DictConfig
    run: RunConfig
    overrides: list[str]
    identity: RunIdentity
    member: Member


def member_jobs(cfg: DictConfig) -> list[tuple[int, list[str], Path]]:
    """(seed, overrides, folder) of each member of the pack ``cfg`` describes."""
    hydra_cfg = HydraConfig.get()
    names = hydra_cfg.job.config.override_dirname
    task = [o for o in hydra_cfg.overrides.task if override_key(o) not in (*PACK_KEYS, "seed")]
    members = []
    for seed in cfg.pack.seeds:
        overrides = [*task, f"seed={seed}"]
        name = override_dirname(overrides, list(names.exclude_keys), names.item_sep,
                                names.kv_sep)
        folder = Path(hydra_cfg.sweep.dir).absolute() / job_dir_name(name)  # as Hydra gives it
        members.append((int(seed), overrides, folder))
    return members


def _write_hydra_files(folder: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """The member's ``.hydra/`` as Hydra writes it for a job: its config and overrides."""
    hydra_dir = folder / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(hydra_dir / "config.yaml", cfg)
    write_yaml(hydra_dir / "overrides.yaml", overrides)


class Pack:
    """The members of one pack, the pack's module, data and Trainer."""

    def __init__(self, cfg: DictConfig, output_dir: Path, slot: Slot | None,
                 locks: contextlib.ExitStack, identity_of):
        """``identity_of(cfg, overrides)``: a member's tracker identity (``task.py``)."""
        self.output_dir, self.slot, self.id = output_dir, slot, str(cfg.pack.id)
        self.config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        self.jobs: list[MemberJob] = []
        self.trainer: L.Trainer | None = None  # built by build()
        for seed, overrides, folder in member_jobs(cfg):
            member_cfg = cfg.copy()
            OmegaConf.update(member_cfg, "seed", seed)
            OmegaConf.update(member_cfg, "pack.seeds", [])
            OmegaConf.update(member_cfg, "pack.id", None)
            try:
                done = completed_results(folder, OmegaConf.to_container(
                    member_cfg, resolve=True, enum_to_str=True))
            except OtherJobError as err:
                log.error("error: %s", err)
                _write_hydra_files(folder, member_cfg, overrides)  # the summary counts it
                continue
            if done is not None:
                log.info("%s: completed by an earlier run, skipped", folder)
                continue
            try:
                locks.enter_context(job_lock(folder))
            except JobBusy as err:
                log.info("%s: skipped here", err)
                continue
            _write_hydra_files(folder, member_cfg, overrides)
            run = validate(member_cfg)
            if slot is not None:
                run.trainer = {**run.trainer, **slot.trainer_settings(run.trainer)}
            if reason := refusal(run):
                raise ConfigError(reason)
            identity = identity_of(member_cfg, overrides)
            self.jobs.append(MemberJob(member_cfg, run, overrides, identity,
                                       Member(seed, folder, {})))
        self.train_seconds = 0.0

    @classmethod
    def of_seeds(cls, cfg: DictConfig, seeds: list[int], output_dir: Path) -> Pack:
        """A pack of ``cfg`` at ``seeds`` outside a sweep (the bench's): member k's folder
        is ``output_dir/seed<k>``."""
        pack = cls.__new__(cls)
        pack.output_dir, pack.slot, pack.id, pack.trainer = output_dir, None, "bench", None
        pack.jobs, pack.train_seconds = [], 0.0
        pack.config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        for seed in seeds:
            member_cfg = cfg.copy()
            OmegaConf.update(member_cfg, "seed", seed)
            pack.jobs.append(MemberJob(member_cfg, validate(member_cfg), [f"seed={seed}"],
                                       RunIdentity(name=f"seed={seed}", tags=[]),
                                       Member(seed, output_dir / f"seed{seed}", {})))
        return pack

    @property
    def info(self) -> dict:
        """What a member's results say of its pack."""
        return {"id": self.id, "size": len(self.jobs), "seeds": [j.member.seed for j in self.jobs]}

    def build(self) -> None:
        first = self.jobs[0].run
        dataset = DATASETS[first.dataset.name]
        nets, generators = [], []
        for job in self.jobs:
            L.seed_everything(job.run.seed, verbose=False)  # the solo job's initialisation
            nets.append(build_model(job.run.model, job.run.downsample, dataset.input_shape,
                                    dataset.num_classes))
            generators.append(torch.Generator().set_state(torch.get_rng_state()))
            job.member.hyper_parameters = solo_hyper_parameters(
                job.run, dataset.input_shape, dataset.num_classes)
        self.summary = ModelSummary.of(nets[0], dataset.input_shape)
        unfuse_to_clip(first.optimizer, first.trainer)
        self.module = PackedClassifier(nets, generators, first.optimizer, dataset.num_classes,
                                       self.summary, channels_last=first.speed.channels_last)
        paths = first.paths
        self.datamodule = PackedDataModule(first.dataset, Path(paths.data_dir),
                                           Path(paths.cache_dir), [j.run.seed for j in self.jobs])
        self.resumed_from = resume_point(self.output_dir)
        for job in self.jobs:
            self._start_logger(job)
        pack_last = self.output_dir / CHECKPOINTS / LAST
        self.outputs = MemberOutputs([j.member for j in self.jobs], pack_last)
        callbacks = [self.outputs, StopAtStepBoundary(pack_last),
                     SameJob(self.config, self.output_dir)]
        if self.slot is not None:
            callbacks.append(ShareIdleCores(self.slot))
        self.trainer = pack_trainer(first.trainer, self.output_dir, callbacks)

    def _start_logger(self, job: MemberJob) -> None:
        job.identity.alongside = True
        job.member.tracker, job.member.logger = start_tracking(
            job.identity, job.cfg, job.run, job.member.output_dir, self.summary,
            self.resumed_from)
        job.member.config = job.identity.config  # resolved by start_tracking

    def fit(self) -> None:
        cfg = self.jobs[0].run
        say(f"{cfg.model.name} + {cfg.downsample.name} on {cfg.dataset.name}: a pack of "
            f"{len(self.jobs)} (seeds {', '.join(str(j.member.seed) for j in self.jobs)}), "
            f"one network in one process\n{self.summary.format()}")
        fit_to_the_end_or_a_stop(self)

    def record(self, k: int) -> Results:
        """Member k evaluated and recorded as its solo job would be, from its own checkpoint."""
        job = self.jobs[k]
        member = job.member
        device = self.trainer.strategy.root_device
        module = DownsampleClassifier.load_from_checkpoint(member.checkpoint.best_model_path,
                                                           map_location=device)
        with quiet_lightning():  # the evaluation Trainer's lines, once per member
            solo = build_evaluation(job.cfg, module, member.output_dir, trainer=(
                evaluation_trainer(job.run.trainer, member.output_dir)))
            solo.identity, solo.tracker, solo.logger = job.identity, member.tracker, member.logger
            solo.checkpoint, solo.slot, solo.pack = member.checkpoint, self.slot, self.info
            solo.train_seconds = self.train_seconds
            solo.resumed_from = self.resumed_from
            solo.datamodule.splits = self.datamodule.splits  # loaded once, for every member
            evaluation = solo.evaluate(ckpt_path=None)
        return solo.record(evaluation)

    def stopped_at(self) -> dict[str, int] | None:
        return stopped_at(self.trainer)

    def finish(self, k: int, exit_code: int) -> None:
        """End member k's tracker run (its W&B run runs beside the others')."""
        member = self.jobs[k].member
        if member.logger is not None:
            member.tracker.finish(member.logger, exit_code)
