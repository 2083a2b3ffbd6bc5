"""Hydra's side of the schema: the config folder, and the schemas and resolvers it registers.

With every schema in the ConfigStore, a wrong key, type or choice fails while Hydra composes.
They are stored outside any config group, so ``--help`` lists only the groups a user chooses
from. A caller of Hydra's Compose API calls ``register_configs()`` first, as the command line does.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
from dataclasses import field, make_dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from downsample_study.config.defining import incidental_keys
from downsample_study.config.hydra_versions import VERSION_BASE, register_resolver, store
from downsample_study.config.schema import CHOICES, Config
from downsample_study.config.trainer_checks import plain_values
from downsample_study.console import SIDE_COMMANDS
from downsample_study.errors import StorageError
from downsample_study.evaluations.configs import current_evaluation, evaluation_schema
from downsample_study.layout import job_dir_name
from downsample_study.storage import atomic_write
from downsample_study.training.configs import LOGGERS


def _config_dir() -> Path:
    """``conf/`` inside the installed package (wheel), else the repository's (editable)."""
    packaged = Path(str(resources.files("downsample_study"))) / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "conf"


CONFIG_DIR = _config_dir()

# Arguments the framework sets itself; a user value for them would be silently overwritten.
MANAGED_TRAINER_ARGS = {"logger", "callbacks", "default_root_dir", "enable_checkpointing"}


def trainer_arguments() -> dict[str, dict[str, list] | None]:
    """The ``lightning.Trainer`` keyword arguments a user may set, each with the plain values its
    annotation admits. Importing Lightning takes seconds, which composing should not: the
    signature is read once per Lightning version into the cache folder."""
    return {name: spec for name, spec in _trainer_signature().items()
            if name not in MANAGED_TRAINER_ARGS}


def _trainer_signature() -> dict[str, dict[str, list] | None]:
    cache = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "downsample_study" / f"trainer-arguments-{_lightning_version()}.json")
    try:
        specs = json.loads(cache.read_text())
        if isinstance(specs, dict) and all(_is_spec(s) for s in specs.values()):
            return specs
    except (OSError, ValueError):
        pass
    from lightning import Trainer

    try:
        signature = inspect.signature(Trainer.__init__, eval_str=True)
    except Exception:  # an annotation that no longer evaluates: the names, types unchecked
        signature = inspect.signature(Trainer.__init__)
    specs = {name: plain_values(p.annotation) for name, p in signature.parameters.items()
             if p.kind is p.KEYWORD_ONLY}
    # where the cache cannot be written (read-only, full), each start reads the signature
    with contextlib.suppress(OSError, StorageError), atomic_write(cache) as f:
        json.dump(specs, f)
    return specs


def _is_spec(spec: Any) -> bool:
    return spec is None or (isinstance(spec, dict) and set(spec) == {"types", "values"}
                            and all(isinstance(v, list) for v in spec.values()))


def _lightning_version() -> str:
    try:
        return metadata.version("lightning")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def trainer_schema() -> type:
    """A dataclass with one optional field per Trainer argument: each works from the command
    line, while a misspelt one, or a wrong type for a plainly typed one (``max_epochs=1.5``),
    fails at composition."""
    return make_dataclass("TrainerConfig", [(name, _field_type(spec), field(default=None))
                                            for name, spec in trainer_arguments().items()])


def _field_type(spec: dict[str, list] | None) -> Any:
    """An argument of one plain type (``max_epochs: int | None``) is typed in the schema, so
    that Hydra refuses a wrong value while it composes; the rest (unions, literals, objects)
    are checked at start-up (``check_trainer``) or left to Lightning."""
    if spec is None or spec["values"]:
        return Any
    kinds = set(spec["types"]) - {"null"}
    plain = {"int": int, "float": float, "str": str, "bool": bool}
    return Optional[plain[kinds.pop()]] if len(kinds) == 1 else Any  # noqa: UP045


def top_level_schema() -> type:
    """``Config`` with the Trainer's schema and the evaluations registered now."""
    return _top_level(evaluation_schema())


@functools.cache
def _top_level(evaluation: type) -> type:
    trainer = trainer_schema()
    return make_dataclass("TopLevelConfig",
                          [("trainer", trainer, field(default_factory=trainer)),
                           ("evaluation", evaluation, field(default_factory=evaluation))],
                          bases=(Config,))


def config_loader() -> Any:
    """Hydra's config loader, which lists a group's options (what ``downsample=glob(*pool)``
    sweeps) as Hydra's own sweeper does: the running app's, else one of the config folder (a
    sweep's folder read in a process of its own)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
            return GlobalHydra.instance().config_loader()
    return GlobalHydra.instance().config_loader()


def presets(kind: str) -> str:
    """The project's ``hydra/<kind>`` presets (launcher, sweeper), for ``--help``."""
    return ", ".join(sorted(p.stem for p in (CONFIG_DIR / "hydra" / kind).glob("*.yaml")))


def side_commands() -> str:
    """The side commands, one a line with what each does, for ``--help``."""
    width = max(map(len, SIDE_COMMANDS))
    return "\n".join(f"{name:<{width}}  {does}" for name, (_, does) in SIDE_COMMANDS.items())


def env_or(name: str, default: str) -> str:
    """The environment variable ``name``, or ``default`` where it is unset or empty."""
    return os.environ.get(name) or default


def ddp_strategy() -> str:
    """``ddp`` where SLURM already started one process per device (``tasks_per_node``), else
    ``ddp_spawn``: plain ``ddp`` re-runs the command line for its extra processes, which in a
    multirun re-runs the whole sweep."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    many_tasks = int(os.environ.get("SLURM_NTASKS", "1")) > 1
    return "ddp" if many_tasks and SLURMEnvironment.detect() else "ddp_spawn"


RESOLVERS = {
    "env_or": env_or,
    # hydra.job.config.override_dirname.exclude_keys: what a job folder's name leaves out
    "incidental_keys": lambda: incidental_keys(CONFIG_DIR, tuple(trainer_arguments())),
    "job_dir": job_dir_name,
    "presets": presets,
    "side_commands": side_commands,
    "ddp_strategy": ddp_strategy,
}


def typed_config(data: dict[str, Any]) -> DictConfig:
    """A config saved as plain data (``results.json``'s ``config``) typed by the schema again,
    as Hydra composes it (each choice's node is typed at start-up, by its name); one saved
    before the evaluations had nodes of their own is read as it would be written now."""
    data = {**data, "evaluation": current_evaluation(data.get("evaluation") or {})}
    return OmegaConf.merge(OmegaConf.structured(top_level_schema()), data)


def _open_dicts(instance: Any) -> DictConfig:
    """The schema of one option, its dict-valued keys open to keys of the user's choosing
    (``logger.wandb.options={notes: ...}``): Hydra closes every node to unknown keys."""
    node = OmegaConf.structured(instance)
    for _, value in node.items_ex(resolve=False):
        if isinstance(value, DictConfig) and OmegaConf.get_type(value) is dict:
            OmegaConf.set_struct(value, False)
    return node


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore and register the resolvers the presets use
    (again after new entries were registered: it stores what the registries hold now)."""
    store(name="schema", node=top_level_schema())
    for kind, registry in CHOICES.items():
        for name, schema in registry.schemas.items():
            store(name=f"schema_{kind}_{name}", node=_open_dicts(schema(name=name)))
    for name, schema in LOGGERS.schemas.items():  # a node each, under logger.<name>
        store(name=f"schema_logger_{name}", node=_open_dicts(schema()))
    for name, resolver in RESOLVERS.items():
        register_resolver(name, resolver)
