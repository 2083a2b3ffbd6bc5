"""The fixed part of the configuration schema: the top level and the nodes whose keys do not
depend on a choice. (Each choice's node — ``dataset``, ``downsample``, ``model``,
``optimizer``, ``logger`` — has the schema its registered entry declares, next to its builder.)

The dataclasses are the one source of every default; the YAML files in ``conf/`` choose
options, and ``--cfg job`` shows the composed result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from downsample_study.choices import Choice, as_choice


class JobMode(Choice):
    train = "train"
    summary = "summary"  # print the layer table and exit


class ShiftFill(Choice):
    zero = "zero"  # what the shift uncovers is raw pixel 0, what leaves the frame is lost
    circular = "circular"  # the image wraps around


CompileMode = Choice(
    "CompileMode",
    {name: name for name in ("none", "default", "reduce-overhead", "max-autotune")},
)
CompileMode.__doc__ = "``torch.compile`` modes (``reduce-overhead``: CUDA graphs), or none."


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:DATA_DIR,./data}"
    # where gzipped IDX files are decompressed when data_dir is read-only
    cache_dir: str = "${oc.env:XDG_CACHE_HOME,'~/.cache'}/downsample_study"


@dataclass
class EvaluationConfig:
    """Measurements after the test pass, on the selected checkpoint (cheap; each switchable)."""

    shift: bool = True  # accuracy and consistency under random shifts (Zhang 2019)
    shift_max: int = 3  # shifts are drawn uniformly from [-shift_max, shift_max] pixels per axis
    shift_modes: list[ShiftFill] = field(
        default_factory=lambda: [ShiftFill.zero, ShiftFill.circular]
    )
    shift_samples: int = 1  # independent shift pairs per test image
    shift_seed: int = 0  # the same shifts for every run, so variants are compared on equal terms
    feature_maps: bool = True  # figure of the activations around each downsampling stage
    feature_map_images: int = 4  # the first test image of each of the first N classes
    feature_map_channels: int = 4  # channels shown per activation

    def __post_init__(self) -> None:
        self.shift_modes = [as_choice(ShiftFill, mode, "evaluation.shift_modes")
                            for mode in self.shift_modes]


@dataclass
class ReportConfig:
    """What ``python -m downsample_study.report`` compares each variant with.

    Each baseline maps config groups (or dotted keys) to values, e.g. ``{downsample: maxpool}``:
    a variant is compared with the variant that has those values and agrees on everything
    else (a group's own options aside; ``downsample.batch_norm``/``dropout`` must agree).
    """

    baselines: list[dict[str, str]] = field(default_factory=lambda: [{"downsample": "maxpool"}])


@dataclass
class ParallelConfig:
    """``hydra/launcher=parallel``: how many jobs share one GPU (sets the default ``n_jobs``),
    and whether its workers start as forks of the sweep's process (``sweeps/slots.py``)."""

    jobs_per_gpu: int = 1
    fork: bool = True


@dataclass
class SpeedConfig:
    """Optional fast paths; results do not depend on them beyond floating-point rounding."""

    # NHWC memory format for the net and the batches; null: on for CPU training (1.1-2.0x
    # faster steps there), off on GPUs until measured there (training/speed.py)
    channels_last: bool | None = None
    # torch.compile mode for the net. Pays on a GPU; on CPU, compiling takes longer than
    # LeNet-sized runs.
    compile: CompileMode = CompileMode["none"]

    def __post_init__(self) -> None:
        self.compile = as_choice(CompileMode, self.compile, "speed.compile")


@dataclass
class Config:
    """The top level. ``trainer`` gets its schema from Lightning's signature (``store.py``)."""

    dataset: Any = MISSING
    downsample: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    logger: Any = MISSING
    trainer: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    seed: int = 0
    mode: JobMode = JobMode.train
