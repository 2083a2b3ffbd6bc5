"""Typed configuration: the schema Hydra composes into, and the start-up validation.

The top-level schema (``Config``) is registered in Hydra's ConfigStore, so a wrong type or an
unknown key in ``dataset``, ``paths``, ``trainer`` or the top level fails while Hydra composes,
naming the key. The nodes whose keys depend on a choice (``downsample``, ``model``,
``optimizer``, ``logger``) are validated by ``validate`` against the dataclass that the chosen
entry registered, before any data is loaded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class UserError(Exception):
    """An error caused by the user's input: reported as a one-line message, never a traceback."""


class ConfigError(UserError):
    """A configuration value is wrong: the message names the key and what is allowed."""


# --- nodes with a fixed schema -------------------------------------------------------------


@dataclass
class DatasetConfig:
    name: str = MISSING
    batch_size: int = 64
    eval_batch_size: int = 1000
    val_size: int = 5000
    split_seed: int = 0  # the train/val split is the same for every run seed
    augment: bool = False  # random crop (pad 4) + horizontal flip, on the batch, on device
    verify_checksums: bool = True  # CIFAR-10 only: torchvision's fixed MD5 sums of the batches
    download: bool = True


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
    shift_modes: list[str] = field(default_factory=lambda: ["zero", "circular"])
    shift_samples: int = 1  # independent shift pairs per test image
    shift_seed: int = 0  # the same shifts for every run, so variants are compared on equal terms
    feature_maps: bool = True  # figure of the activations around each downsampling stage
    feature_map_images: int = 4  # the first test image of each of the first N classes
    feature_map_channels: int = 4  # channels shown per activation


SHIFT_MODES = ("zero", "circular")


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
    and whether its workers start as forks of the sweep's process (``slots.fork_workers``)."""

    jobs_per_gpu: int = 1
    fork: bool = True


@dataclass
class SpeedConfig:
    """Optional fast paths; results do not depend on them beyond floating-point rounding."""

    # NHWC memory format for the net and the batches; null: on for CPU training (1.1-2.0x
    # faster steps there), off on GPUs until measured there (downsample_study/speed.py)
    channels_last: bool | None = None
    # torch.compile mode for the net: none | default | reduce-overhead (CUDA graphs) |
    # max-autotune. Pays on a GPU; on CPU, compiling takes longer than LeNet-sized runs.
    compile: str = "none"


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


# Arguments the framework sets itself; a user value for them would be silently overwritten.
_MANAGED_TRAINER_ARGS = {"logger", "callbacks", "default_root_dir", "enable_checkpointing"}


def _trainer_schema() -> type:
    """A dataclass with one optional field per ``lightning.Trainer`` argument.

    Every Trainer argument works from the command line (``trainer.limit_train_batches=20``)
    while a misspelt one (``trainer.max_epoch=1``) fails at composition with its name.
    """
    from lightning import Trainer

    names = [
        name
        for name, p in inspect.signature(Trainer.__init__).parameters.items()
        if name != "self" and p.kind is p.KEYWORD_ONLY and name not in _MANAGED_TRAINER_ARGS
    ]
    return make_dataclass("TrainerConfig", [(n, Any, field(default=None)) for n in names])


TrainerConfig = _trainer_schema()


@dataclass
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    downsample: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    logger: Any = MISSING
    trainer: Any = field(default_factory=TrainerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    seed: int = 0
    mode: str = "train"  # train | summary (print the layer table and exit)


MODES = ("train", "summary")


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)


# --- nodes whose schema depends on the chosen entry ----------------------------------------


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class AdamConfig(OptimizerConfig):
    betas: tuple[float, float] = (0.9, 0.999)
    fused: bool = True  # one kernel for the whole update, where torch supports it


@dataclass
class SGDConfig(OptimizerConfig):
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False


OPTIMIZER_SCHEMAS: dict[str, type] = {"adam": AdamConfig, "sgd": SGDConfig}


@dataclass
class LoggerConfig:
    name: str = MISSING


@dataclass
class WandbConfig(LoggerConfig):
    project: str = "downsample_study"
    entity: str | None = None
    # auto: online when credentials exist, otherwise offline with a notice; or online,
    # offline, disabled
    mode: str = "auto"
    group: str | None = None
    job_type: str | None = None  # default: the job's overrides without the seed
    tags: list[str] = field(default_factory=list)


LOGGER_SCHEMAS: dict[str, type] = {
    "wandb": WandbConfig,
    "csv": LoggerConfig,
    "tensorboard": LoggerConfig,
    "none": LoggerConfig,
}
WANDB_MODES = ("auto", "online", "offline", "disabled")


def _allowed(names) -> str:
    return ", ".join(sorted(names))


def typed_node(node: DictConfig, key: str, schemas: dict[str, type]) -> Any:
    """Check ``node`` against the schema its ``name`` selects and return it as a dataclass."""
    name = node.get("name")
    if name not in schemas:
        raise ConfigError(
            f"{key}.name: unknown {key} {name!r}; allowed: {_allowed(schemas)} "
            f"(choose one with {key}=NAME)"
        )
    schema = OmegaConf.structured(schemas[name])
    try:
        merged = OmegaConf.merge(schema, node)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, key, schemas[name])) from None
    return OmegaConf.to_object(merged)


def _describe(err: OmegaConfBaseException, prefix: str, schema: type) -> str:
    """One line naming the offending key, the problem and the allowed keys."""
    full_key = getattr(err, "full_key", None) or ""
    key = f"{prefix}.{full_key}" if full_key else prefix
    message = str(err).splitlines()[0]
    allowed = _allowed(f.name for f in fields(schema))
    return f"{key}: {message} (keys of this {prefix}: {allowed})"


@dataclass
class RunConfig:
    """The validated configuration of one job, as plain typed objects."""

    dataset: DatasetConfig
    downsample: Any
    model: Any
    optimizer: OptimizerConfig
    logger: LoggerConfig
    trainer: dict[str, Any]
    paths: PathsConfig
    seed: int
    mode: str
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)


def _evaluation(cfg: DictConfig, num_classes: int) -> EvaluationConfig:
    evaluation = OmegaConf.to_object(cfg.evaluation)
    unknown = set(evaluation.shift_modes) - set(SHIFT_MODES)
    if unknown:
        raise ConfigError(f"evaluation.shift_modes: unknown mode(s) {', '.join(sorted(unknown))}; "
                          f"allowed: {_allowed(SHIFT_MODES)}")
    for key, low in (("shift_max", 0), ("shift_samples", 1), ("feature_map_channels", 1)):
        if getattr(evaluation, key) < low:
            raise ConfigError(f"evaluation.{key}: must be >= {low}, "
                              f"got {getattr(evaluation, key)}")
    if not 1 <= evaluation.feature_map_images <= num_classes:
        raise ConfigError(f"evaluation.feature_map_images: one image per class, so 1 to "
                          f"{num_classes}; got {evaluation.feature_map_images}")
    return evaluation


def validate(cfg: DictConfig) -> RunConfig:
    """Validate a composed config; raise ``ConfigError`` naming the first bad key."""
    from downsample_study.data import DATASETS
    from downsample_study.downsample import DOWNSAMPLE_SCHEMAS
    from downsample_study.models import MODEL_SCHEMAS

    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{getattr(err, 'full_key', '')}: {err}") from None
    if cfg.mode not in MODES:
        raise ConfigError(f"mode: unknown mode {cfg.mode!r}; allowed: {_allowed(MODES)}")
    dataset = OmegaConf.to_object(cfg.dataset)
    if dataset.name not in DATASETS:
        raise ConfigError(f"dataset.name: unknown dataset {dataset.name!r}; "
                          f"allowed: {_allowed(DATASETS)}")
    for key in ("batch_size", "eval_batch_size", "val_size"):
        if getattr(dataset, key) < 1:
            raise ConfigError(f"dataset.{key}: must be >= 1, got {getattr(dataset, key)}")
    downsample = typed_node(cfg.downsample, "downsample", DOWNSAMPLE_SCHEMAS)
    if not 0.0 <= downsample.dropout < 1.0:
        raise ConfigError(f"downsample.dropout: a probability in [0, 1) is required, "
                          f"got {downsample.dropout}")
    optimizer = typed_node(cfg.optimizer, "optimizer", OPTIMIZER_SCHEMAS)
    if optimizer.lr <= 0:
        raise ConfigError(f"optimizer.lr: must be > 0, got {optimizer.lr}")
    logger = typed_node(cfg.logger, "logger", LOGGER_SCHEMAS)
    if isinstance(logger, WandbConfig) and logger.mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode: unknown W&B mode {logger.mode!r}; "
                          f"allowed: {_allowed(WANDB_MODES)}")
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if v is not None}
    return RunConfig(
        dataset=dataset,
        downsample=downsample,
        model=typed_node(cfg.model, "model", MODEL_SCHEMAS),
        optimizer=optimizer,
        logger=logger,
        trainer=trainer,
        paths=OmegaConf.to_object(cfg.paths),
        seed=cfg.seed,
        mode=cfg.mode,
        evaluation=_evaluation(cfg, DATASETS[dataset.name].num_classes),
        speed=_speed(cfg),
    )


def _speed(cfg: DictConfig) -> SpeedConfig:
    speed = OmegaConf.to_object(cfg.speed)
    if speed.compile not in COMPILE_MODES:
        raise ConfigError(f"speed.compile: unknown mode {speed.compile!r}; "
                          f"allowed: {', '.join(COMPILE_MODES)}")
    return speed
