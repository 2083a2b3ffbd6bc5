"""The start-up checks Hydra's schema cannot make: value ranges, nodes typed by their ``name``.

Run before any data is loaded; a ``ConfigError`` names the first bad key and what is allowed."""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from downsample_study.config.messages import node_message
from downsample_study.config.schema import CHOICES, JobMode, PathsConfig, SpeedConfig
from downsample_study.config.store import top_level_schema, trainer_arguments
from downsample_study.config.trainer_checks import check_trainer
from downsample_study.data.configs import DATASETS, DatasetConfig
from downsample_study.errors import ConfigError, no_such_key
from downsample_study.evaluations.configs import DataShape, enabled, evaluation_schema
from downsample_study.training.configs import LOGGERS, LoggerConfig, OptimizerConfig

_ABSENT = object()
MAX_SEED = 2**32 - 1  # what seed_everything (numpy) accepts


@dataclass
class RunConfig:
    """The validated configuration of one job, as plain typed objects."""

    dataset: DatasetConfig
    downsample: Any
    model: Any
    optimizer: OptimizerConfig
    trainer: dict[str, Any]  # the Trainer arguments that are set
    paths: PathsConfig
    seed: int
    mode: JobMode
    evaluation: Any = field(default_factory=lambda: evaluation_schema()())  # evaluation.*
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    logger: dict[str, LoggerConfig] = field(default_factory=dict)  # name -> its options
    callbacks: dict[str, Any] = field(default_factory=dict)  # name -> node with _target_
    resolved: dict[str, Any] = field(default_factory=dict)  # the whole config, plain data


def _callbacks(node: DictConfig | None) -> dict[str, Any]:
    """``callbacks``: name -> plain node (none in a config composed before the group)."""
    return {} if node is None else OmegaConf.to_container(node, resolve=True)


def _loggers(node: DictConfig | None) -> dict[str, LoggerConfig]:
    """``logger``: each chosen logger's node, typed by its registered schema."""
    typed = {}
    for name in node or {}:
        if name not in LOGGERS:
            raise ConfigError(f"logger.{name}: unknown logger; allowed: "
                              f"{', '.join(LOGGERS.names())} (logger=NAME, several: "
                              f"logger=[wandb,tensorboard], none: logger=none)")
        data = OmegaConf.to_container(node[name], enum_to_str=True) or {}
        if (found := _added_key(data, LOGGERS.schema(name), f"logger.{name}.")) is not None:
            raise ConfigError(found)
        typed[name] = typed_node(node[name], f"logger.{name}", LOGGERS.schema(name))
    return typed


def typed_node(node: DictConfig, key: str, schema: type) -> Any:
    """``node`` checked against ``schema``, as a dataclass: composition typed it by the chosen
    option, which ``downsample.name=stride2`` alone does not change."""
    if OmegaConf.get_type(node) is schema:
        return OmegaConf.to_object(node)
    try:  # the node's values, typed by the schema its name selects
        content = OmegaConf.create(OmegaConf.to_container(node, enum_to_str=True))
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), content))
    except OmegaConfBaseException as err:
        raise ConfigError(node_message(err, prefix=key)) from None


def _added_key(data: dict[str, Any], schema: type, prefix: str = "") -> str | None:
    """A message for the first key of ``data`` that ``schema`` lacks (added with ``+key=value``,
    which Hydra lets into a closed node and nothing reads); None if none. An open ``dict``
    field, such as ``logger.wandb.options``, takes any key."""
    hints = typing.get_type_hints(schema)
    for key, value in data.items():
        if key not in hints:
            return no_such_key(f"{prefix}{key}", sorted(hints), parent=prefix.rstrip("."))
        nested = dataclasses.is_dataclass(hints[key]) and isinstance(value, dict)
        if nested and (found := _added_key(value, hints[key], f"{prefix}{key}.")) is not None:
            return found
    return None


def _check_keys(cfg: DictConfig) -> None:
    """Every node chosen (``~downsample`` removes one) and no key that no schema has."""
    for key, registry in CHOICES.items():
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}: none chosen (~{key} removes it); choose one: "
                              f"{key}=<{'|'.join(registry.names())}>")
    data = OmegaConf.to_container(cfg, enum_to_str=True)
    found = _added_key(data, top_level_schema())
    for key, registry in CHOICES.items():
        found = found or _added_key(data[key], registry.schema(data[key].get("name")), f"{key}.")
    if found is not None:
        raise ConfigError(found)


def _evaluation(cfg: DictConfig, data: DataShape) -> Any:
    """The ``evaluation`` node, each evaluation switched on checked against the dataset."""
    evaluation = OmegaConf.to_object(cfg.evaluation)
    for name, settings in enabled(evaluation):
        settings.check(f"evaluation.{name}", data)
    return evaluation


def _check_report(cfg: DictConfig) -> None:
    """The sweep's ``report.*``, checked before anything trains rather than when the report
    finds no variant with a misspelt baseline: each baseline's keys are config keys, and a
    config group's value one of its options."""
    OmegaConf.to_object(cfg.report)  # its own checks (the margin)
    for i, spec in enumerate(cfg.report.baselines):
        if not spec:  # every variant would be its own baseline: nothing compared
            raise ConfigError(f"report.baselines[{i}]: empty; a baseline names the values it "
                              f"holds, e.g. {{downsample: maxpool}}")
        for key, value in spec.items():
            where = f"report.baselines[{i}].{key}"
            if key in CHOICES:
                names = CHOICES[key].names()
                if str(value) not in names:
                    raise ConfigError(f"{where}: unknown value {value!r}; allowed: "
                                      f"{', '.join(names)}")
            elif OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
                raise ConfigError(f"{where}: no such key in the config (a config group, such "
                                  f"as downsample, or a dotted key, such as "
                                  f"downsample.batch_norm)")


def validate(cfg: DictConfig) -> RunConfig:
    """Validate a composed config (the caller's stays as it is); raise ``ConfigError`` naming
    the first bad key."""
    cfg = copy.deepcopy(cfg)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{getattr(err, 'full_key', '')}: {err}") from None
    _check_keys(cfg)
    nodes = {key: typed_node(cfg[key], key, registry.schema(cfg[key].get("name")))
             for key, registry in CHOICES.items()}
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if v is not None}
    check_trainer(trainer, trainer_arguments())
    _check_report(cfg)
    OmegaConf.to_object(cfg.pack)  # its size: a sweep that does not pack still says so
    if cfg.get("checkpoint") is not None and cfg.mode != JobMode.eval:
        raise ConfigError(f"checkpoint: read by mode=eval alone (a finished job measured "
                          f"again), not by mode={cfg.mode.value}, which does not start from a "
                          f"checkpoint; a stopped job resumes when its command runs again")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed: must be in 0 to {MAX_SEED} (numpy's range), got {cfg.seed}")
    dataset = DATASETS[nodes["dataset"].name].configured(nodes["dataset"])
    paths = OmegaConf.to_object(cfg.paths)
    for key in ("data_dir", "cache_dir"):
        if not str(getattr(paths, key)).strip():  # "" would be the working directory
            raise ConfigError(f"paths.{key}: empty; expected a folder's path")
    return RunConfig(
        **nodes,
        trainer=trainer,
        paths=paths,
        seed=cfg.seed,
        mode=cfg.mode,
        evaluation=_evaluation(cfg, DataShape(dataset.channels, dataset.size,
                                                 dataset.num_classes)),
        speed=OmegaConf.to_object(cfg.speed),
        logger=_loggers(cfg.get("logger")),
        callbacks=_callbacks(cfg.get("callbacks")),
        resolved=OmegaConf.to_container(cfg, enum_to_str=True),
    )
