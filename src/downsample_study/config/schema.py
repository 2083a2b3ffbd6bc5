"""The config schema's fixed part: the top level and the nodes whose keys no choice changes.

Each choice's node (``CHOICES``) has the schema its registered entry declares. The dataclasses
are the one source of every default; the YAML files in ``conf/`` choose options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from downsample_study.checks import above
from downsample_study.choices import Choice, as_choice
from downsample_study.data.configs import DATASETS
from downsample_study.errors import ConfigError
from downsample_study.evaluations.configs import evaluation_schema
from downsample_study.nets.configs import MODELS
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.registry import INCIDENTAL, Registry
from downsample_study.training.configs import OPTIMIZERS


class JobMode(Choice):
    train = "train"
    summary = "summary"  # print the layer table and exit
    eval = "eval"  # evaluate a finished job's checkpoint (``checkpoint=``), no training


CompileMode = Choice(
    "CompileMode",
    {name: name for name in ("none", "default", "reduce-overhead", "max-autotune")},
)
CompileMode.__doc__ = "``torch.compile`` modes (``reduce-overhead``: CUDA graphs), or none."


@dataclass
class PathsConfig:
    # env_or: an environment variable set to "" counts as unset (XDG's rule), not as "/"
    data_dir: str = "${env_or:DATA_DIR,./data}"
    # where gzipped IDX files are decompressed (the data folder is never written to)
    cache_dir: str = "${env_or:XDG_CACHE_HOME,'~/.cache'}/downsample_study"


@dataclass
class ReportConfig:
    """What ``python -m downsample_study.report`` compares each variant with.

    Each baseline maps config groups or dotted keys to values (``{downsample: maxpool}``): the
    variant with those values that agrees on everything else, the group's own options aside
    (``downsample.batch_norm``/``dropout`` must agree).
    """

    # each variant is compared with the one that has these values and agrees on the rest
    baselines: list[dict[str, Any]] = field(default_factory=lambda: [{"downsample": "maxpool"}])
    # pp of test top-1: a difference within it counts as none (TOST). 0.2 pp is about one
    # seed-to-seed standard deviation of LeNet on MNIST here (0.1-0.3 pp, README tables):
    # below what seeds can resolve at n = 10, and below what would change a choice of operator
    equivalence_margin: float = 0.2

    def __post_init__(self) -> None:
        above("report.equivalence_margin", self.equivalence_margin, 0)


@dataclass
class ParallelConfig:
    """``hydra/launcher=parallel``: how many jobs share one GPU (sets the default ``n_jobs``),
    and whether its workers start as forks of the sweep's process (``sweeps/slots.py``)."""

    jobs_per_gpu: int = 1  # jobs sharing each GPU at once (n_jobs: GPUs × this, else cores)
    fork: bool = True  # workers start as forks (fast) rather than fresh interpreters


@dataclass
class PackConfig:
    """``hydra/sweeper=packed``: a multirun's jobs that differ only in ``seed`` train as packs of
    up to ``size`` (a number, or ``auto``: ``packing/sizes.py``), one network in one process.
    The sweeper sets ``seeds`` and ``id`` on the job that trains a pack."""

    size: str = "auto"  # members per pack: a number, or auto (8 on CPU, 32 on a GPU)
    seeds: list[int] = field(default_factory=list)  # set by the sweeper: the members' seeds
    id: str | None = None  # set by the sweeper: the pack's folder name

    def __post_init__(self) -> None:
        if self.size != "auto" and not (self.size.isdigit() and int(self.size) >= 1):
            raise ConfigError(f"pack.size: a number of members >= 1 or auto, got {self.size!r}")


@dataclass
class SpeedConfig:
    """Optional fast paths; results do not depend on them beyond floating-point rounding."""

    # NHWC memory format for the net and the batches; null: on for CPU training (faster there:
    # benchmarks/RESULTS.md), off on GPUs until measured there (training/speed.py)
    channels_last: bool | None = None
    # torch.compile mode: pays on a GPU; on CPU, compiling takes longer than a LeNet-sized run
    compile: CompileMode = CompileMode["none"]

    def __post_init__(self) -> None:
        self.compile = as_choice(CompileMode, self.compile, "speed.compile")


# the config groups whose node's schema is the chosen entry's (``dataset=cifar10``)
CHOICES: dict[str, Registry] = {"dataset": DATASETS, "downsample": DOWNSAMPLES, "model": MODELS,
                                "optimizer": OPTIMIZERS}


@dataclass
class Config:
    """The top level. ``trainer`` gets its schema from Lightning's signature (``store.py``);
    a field marked ``INCIDENTAL`` does not define a job (``defining.py``)."""

    dataset: Any = MISSING
    downsample: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    # the experiment loggers, by name: each a node of its registered schema (conf/logger:
    # logger=wandb, logger=[wandb,tensorboard], logger=none; logger.wandb.project=...)
    logger: dict[str, Any] = field(default_factory=dict, metadata=INCIDENTAL)
    trainer: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig, metadata=INCIDENTAL)
    # evaluation.<name>: each registered evaluation's node, ``enabled`` or not (``store.py``
    # types it by the registry as it is when the configs are registered)
    evaluation: Any = field(default_factory=lambda: evaluation_schema()())
    report: ReportConfig = field(default_factory=ReportConfig, metadata=INCIDENTAL)
    parallel: ParallelConfig = field(default_factory=ParallelConfig, metadata=INCIDENTAL)
    speed: SpeedConfig = field(default_factory=SpeedConfig, metadata=INCIDENTAL)
    pack: PackConfig = field(default_factory=PackConfig, metadata=INCIDENTAL)
    seed: int = 0  # of the initial weights, the data order and dropout
    # keys a sweeper tuned for this job's variant (hydra/sweeper=tuned sets optimizer.lr): the
    # report shows them and does not tell variants apart by them
    tuned: list[str] = field(default_factory=list, metadata=INCIDENTAL)
    # train; summary: print the layer table and exit; eval: evaluate a finished job again
    mode: JobMode = field(default=JobMode.train, metadata=INCIDENTAL)
    # Lightning callbacks added to the framework's own, by name: each a node with _target_
    # (conf/callbacks: callbacks=[early_stopping,swa]; any class as +callbacks.x._target_)
    callbacks: dict[str, Any] = field(default_factory=dict)
    # mode=eval: a finished job's folder (its selected checkpoint) or one of its checkpoints
    checkpoint: str | None = field(default=None, metadata=INCIDENTAL)
