"""A finished job, as its folder holds it (``load_run``: its config, results and selected
network), and ``mode=eval``: its checkpoint measured again, nothing trained."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from downsample_study.config.messages import node_message
from downsample_study.config.store import typed_config
from downsample_study.console import quiet_lightning, say
from downsample_study.data.configs import DATASETS
from downsample_study.data.datamodule import DownsampleDataModule
from downsample_study.data.inputs import net_input
from downsample_study.errors import ConfigError, ResultsError, path_of
from downsample_study.evaluations.base import Measured
from downsample_study.evaluations.configs import EVALUATIONS, evaluation_schema
from downsample_study.job.build import member, validated
from downsample_study.job.run import Job, test_line
from downsample_study.layout import (
    CHECKPOINTS,
    EVALUATION_FILE,
    LAST,
    OVERRIDES_FILE,
    PACKS_DIR,
    RESULTS_FILE,
)
from downsample_study.results import Results, read_results, versions
from downsample_study.runtime.locks import running_elsewhere
from downsample_study.runtime.same_job import SameJob
from downsample_study.storage import atomic_write
from downsample_study.training.checkpoints import load, resume_point
from downsample_study.training.module import DownsampleClassifier
from downsample_study.training.tracking import RunIdentity


@dataclass
class Run:
    """One job's folder: what it ran, what it measured, and the network it selected."""

    folder: Path
    results: Results | None  # None: a job that did not complete, loaded from a checkpoint
    device: str = "cpu"
    chosen: Path | None = None  # a checkpoint asked for by name, instead of the selected one

    @property
    def config(self) -> DictConfig:
        """The resolved config the job ran with (typed, as Hydra composed it): its results',
        or the one its checkpoint keeps."""
        if self.results is not None:
            return typed_config(self.results.config)
        return typed_config(load(self.checkpoint)["callbacks"][SameJob.__qualname__]["config"])

    @property
    def checkpoint(self) -> Path:
        """The checkpoint asked for by name; else a completed job's selected one, in its folder
        first (it may have moved) then where written; else the newest that loads."""
        if self.chosen is not None:
            return self.chosen
        if self.results.checkpoint:
            recorded = Path(self.results.checkpoint)
            for candidate in (self.folder / CHECKPOINTS / recorded.name, recorded):
                if candidate.is_file():
                    return candidate
            if self.results.completed:  # not the newest in its place: other weights
                others = sorted(p.name for p in (self.folder / CHECKPOINTS).glob("*.ckpt"))
                hint = (f"to load another, name it: load_run('<job>/{CHECKPOINTS}/"
                        f"{others[-1]}')" if others else "the folder has no checkpoint (a "
                        "sweep's record keeps none): load the job from the sweep folder "
                        "that trained it")
                raise ResultsError(
                    f"{self.folder}: its selected checkpoint, {recorded.name}, is neither in "
                    f"{CHECKPOINTS}/ nor at {recorded}; {hint}")
        newest = resume_point(self.folder, tidy=False)
        if newest is None:
            raise ResultsError(f"{self.folder}: no checkpoint that loads in {CHECKPOINTS}/")
        return newest

    @functools.cached_property
    def module(self):
        """The job's LightningModule, loaded from its checkpoint onto ``device``."""
        return DownsampleClassifier.load_from_checkpoint(self.checkpoint, map_location=self.device)

    @property
    def model(self):
        """The checkpoint's network, in eval mode."""
        return self.module.net.eval()

    @functools.cached_property
    def dataset(self):
        """The registered dataset the job trained on (``data.datasets.ImageDataset``)."""
        return DATASETS[self.config.dataset.name].configured(self.config.dataset)

    @property
    def classes(self) -> list[str]:
        """The names of the classes, by the index ``predict``'s columns have (the indices
        themselves where the dataset names none)."""
        return list(self.dataset.classes) or [str(i) for i in range(self.dataset.num_classes)]

    def predict(self, images):
        """Class probabilities (N × classes) for ``images``: uint8 0–255 or float in [0, 1], one
        or a batch, channels first or last, tensor, numpy or PIL; normalised as in training."""
        batch = net_input(images, self.dataset, self.device)
        with torch.inference_mode():
            return self.model(batch).softmax(dim=1)

    def evaluation_job(self, data_dir=None, output_dir=None, paths=None, evaluation=None) -> Job:
        """The job that measures the checkpoint again, nothing trained: the run's config with
        these settings, a Trainer on ``device`` that logs and saves nothing."""
        cfg = self.config
        if paths is not None:
            cfg.paths = paths
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
        if evaluation is not None:
            cfg.evaluation = evaluation
        folder = Path(output_dir or self.folder)
        one = validated(member(cfg, folder, RunIdentity(name="evaluation", tags=[])))
        settings = one.settings
        datamodule = DownsampleDataModule(settings.dataset, Path(settings.paths.data_dir),
                                          Path(settings.paths.cache_dir), [one.seed])
        evaluator = L.Trainer(accelerator="cpu" if self.device == "cpu" else "gpu", devices=1,
                              logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False,
                              default_root_dir=str(folder))
        return Job([one], folder, self.module, self.dataset, datamodule=datamodule,
                   evaluator=evaluator)

    def evaluate(self, split: str = "test", data_dir: str | Path | None = None) -> dict[str, float]:
        """The checkpoint's ``acc_top1``, ``acc_top2`` and ``loss`` on ``split`` (``test`` or
        ``val``), as ``results.json`` holds them; ``data_dir``: where the data is now."""
        passes = ("test", "val")
        if split not in passes:
            raise ConfigError(f"split: unknown split {split!r}; allowed: {', '.join(passes)}")
        with quiet_lightning():
            job = self.evaluation_job(data_dir)
            run_pass = job.evaluator.test if split == "test" else job.evaluator.validate
            metrics = run_pass(job.module, datamodule=job.datamodule, verbose=False)[0]
        return {name: float(metrics[f"{split}/{name}"])
                for name in ("acc_top1", "acc_top2", "loss")}


    def measure(self, name: str, data_dir: str | Path | None = None, **options) -> Measured:
        """Evaluation ``name`` (``shift_grid``, ``corruptions``, ...) of the checkpoint, with
        ``options`` over its defaults (``radius=2``), nothing else run; its figures are not
        saved (``Measured.figures`` holds them)."""
        schema = EVALUATIONS.schema(name)
        try:
            node = OmegaConf.merge(OmegaConf.structured(schema), {**options, "enabled": True})
        except OmegaConfBaseException as err:
            raise ConfigError(node_message(err, prefix=f"evaluation.{name}")) from None
        evaluation = evaluation_schema()(**{name: OmegaConf.to_object(node)})
        for other in dataclasses.fields(evaluation):
            if other.name != name:
                getattr(evaluation, other.name).enabled = False
        job = self.evaluation_job(data_dir, evaluation=evaluation)
        with quiet_lightning():
            return job.measure(job.members[0], job.module, save=False)[name]


def _device(device) -> str:
    """``device`` as torch names it, when this machine has it; else a ``ConfigError``."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device: {device!r} is not a torch device ({err}); e.g. 'cpu', "
                          f"'cuda', 'cuda:1'") from None
    kind = getattr(torch, parsed.type, None)
    if parsed.type != "cpu" and not (kind and kind.is_available()
                                     and (parsed.index or 0) < kind.device_count()):
        count = kind.device_count() if kind and kind.is_available() else 0
        raise ConfigError(f"device: {device!r}, but this machine has {count} {parsed.type} "
                          f"device{'' if count == 1 else 's'}; load onto 'cpu'")
    return str(parsed)


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """The job in folder ``path`` (one with a ``results.json``), or whose ``results.json`` or
    checkpoint ``path`` is (that checkpoint is then the run's), its network on ``device``."""
    device = _device(device)
    path = path_of(path, "a job's folder, or one of its .ckpt files")
    folder = (path.parent.parent if path.suffix == ".ckpt" else
              path.parent if path.name == RESULTS_FILE else path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or folder (pass a job's folder, or one of "
                           f"its .ckpt files)")
    if path.is_file() and path.suffix != ".ckpt" and path.name != RESULTS_FILE:
        raise ResultsError(f"{path}: not a job's folder, {RESULTS_FILE} or checkpoint; pass "
                           f"a job's folder, its {RESULTS_FILE}, or one of its .ckpt files")
    if folder.parent.name == PACKS_DIR:
        raise ResultsError(f"{path}: a pack's checkpoint, every member's network in one; "
                           f"pass a member's job folder (or one of its .ckpt files), which "
                           f"holds that member alone")
    if not (folder / RESULTS_FILE).is_file():
        if path.suffix == ".ckpt":  # asked for by name: a job that did not complete
            return Run(folder, None, device, path)
        if not (folder / OVERRIDES_FILE).is_file() and not (folder / CHECKPOINTS).is_dir():
            raise ResultsError(f"{path}: not a job's folder or checkpoint (no "
                               f"{folder / RESULTS_FILE})")
        what = ("is still running (another process holds its lock)"
                if running_elsewhere(folder) else "did not complete (no results.json)")
        raise ResultsError(f"{path}: {what}; to load where it got to, name one of its "
                           f"checkpoints: load_run('{folder / CHECKPOINTS}/{LAST}')")
    return Run(folder, read_results(folder / RESULTS_FILE), device,
               path if path.suffix == ".ckpt" else None)


def evaluate_checkpoint(cfg: DictConfig, output_dir: Path) -> None:
    """``mode=eval``: measure the finished job (or checkpoint) ``cfg.checkpoint`` names again,
    without training, with this command's ``paths`` and ``evaluation``, into ``output_dir``."""
    if not cfg.get("checkpoint"):
        raise ConfigError("checkpoint: mode=eval evaluates a finished job: set "
                          "checkpoint=<its folder, or one of its .ckpt files>")
    run = load_run(cfg.checkpoint)
    job = run.evaluation_job(output_dir=output_dir, paths=cfg.paths, evaluation=cfg.evaluation)
    job.announce()
    say(f"evaluating {run.checkpoint}")
    evaluation = job.evaluate(job.members[0], module=job.module)
    say(test_line(run.results.best_epoch if run.chosen is None and run.results else None,
                  evaluation))
    evaluations = {name: measured.record() for name, measured in evaluation.evaluations.items()}
    with atomic_write(Path(output_dir) / EVALUATION_FILE) as f:
        json.dump({"checkpoint": str(run.checkpoint), "val": vars(evaluation.val),
                   "test": vars(evaluation.test), "evaluations": evaluations,
                   "versions": versions()}, f, indent=2)
    say(f"evaluation: {Path(output_dir) / EVALUATION_FILE}")
