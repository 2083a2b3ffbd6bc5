"""The docs' configuration and ``results.json`` references, generated from the schemas.

Every row comes from a dataclass (type, default, allowed values, the comment above or beside
the field) or an option's YAML (its opening comment), so the pages cannot drift from the code.
``python -m downsample_study.config.reference config|results`` prints one."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import enum
import inspect
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from downsample_study.config.schema import CHOICES, Config
from downsample_study.config.store import CONFIG_DIR, MANAGED_TRAINER_ARGS
from downsample_study.evaluations.configs import EVALUATIONS
from downsample_study.results import SCHEMA_VERSION, Results, Status
from downsample_study.training.configs import LOGGERS


def field_comments(cls: type) -> dict[str, str]:
    """Each field or member of ``cls`` (by name): its comment lines above, then beside it."""
    lines = textwrap.dedent("".join(inspect.getsourcelines(cls)[0])).splitlines()
    [node] = ast.parse("\n".join(lines)).body
    comments = {}
    for statement in node.body:
        target = (statement.target if isinstance(statement, ast.AnnAssign)
                  else statement.targets[0] if isinstance(statement, ast.Assign) else None)
        if not isinstance(target, ast.Name):
            continue
        row, parts = statement.lineno - 1, []
        above = row - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            parts.insert(0, lines[above].strip().lstrip("#").strip())
            above -= 1
        if "  # " in lines[row]:
            parts.append(lines[row].split("  # ", 1)[1].strip())
        comments[target.id] = " ".join(parts)
    return comments


def inherited_comments(cls: type) -> dict[str, str]:
    """``field_comments`` of ``cls`` and of the dataclasses it derives from, its own first."""
    comments: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            # one made at run time (make_dataclass) has no source to read comments from
            with contextlib.suppress(OSError, TypeError):
                comments.update({k: v for k, v in field_comments(base).items() if v})
    return comments


def type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def _shown(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    value = _plain(value)
    if value == "":
        return '`""`'
    return "null" if value is None else f"`{value}`".replace("|", "\\|")


def _choices(annotation: Any) -> type[enum.Enum] | None:
    """The enum a key's values come from (also inside ``list[...]`` or ``... | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    return next(filter(None, map(_choices, typing.get_args(annotation))), None)


def key_rows(cls: type, prefix: str = "", incidental: bool = False) -> list[str]:
    """One table row per key of ``cls``, nested dataclasses flattened (``paths.data_dir``);
    ``incidental``: the keys do not define a job (``config/defining.py``)."""
    hints, comments, rows = typing.get_type_hints(cls), inherited_comments(cls), []
    for field in dataclasses.fields(cls):
        kind, default = hints[field.name], _default(field)
        aside = incidental or field.metadata.get("incidental", False)
        nested = [a for a in (kind, *typing.get_args(kind)) if dataclasses.is_dataclass(a)]
        if nested:  # a node of its own (or null), its own comment on a row of its own
            if comment := comments.get(field.name):
                rows.append(f"| `{prefix}{field.name}` | node{' or null' * (kind is not nested[0])}"
                            f" | | | {comment.replace('|', chr(92) + '|')} |")
            rows += key_rows(nested[0], f"{prefix}{field.name}.", aside)
            continue
        if field.name == "name" and prefix.count(".") == 1:  # an option's: group=name chooses it
            continue
        choices = _choices(kind)
        allowed = ", ".join(f"`{m.value}`" for m in choices) if choices else ""
        text = comments.get(field.name, "")
        if aside:
            text += " (not part of what defines the job)"
        text = text.strip().replace("|", "\\|")
        rows.append(f"| `{prefix}{field.name}` | {type_name(kind)} | {_shown(default)} | "
                    f"{allowed} | {text} |")
    return rows


def _table(rows: list[str]) -> list[str]:
    return ["| key | type | default | allowed | what it is |", "| --- | --- | --- | --- | --- |",
            *rows, ""]


def yaml_summary(path: Path) -> str:
    """The first paragraph of an option's YAML file's opening comment."""
    lines = []
    for line in path.read_text().splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or (not text and lines):
            break
        if text and not text.startswith("@package"):
            lines.append(text)
    return " ".join(lines).replace("|", "\\|")


def _options(group: str) -> list[Path]:
    return sorted((CONFIG_DIR / group).glob("*.yaml"))


def _default_options() -> dict[str, str]:
    """The option each group starts from (``conf/config.yaml``'s defaults list)."""
    import yaml

    defaults = yaml.safe_load((CONFIG_DIR / "config.yaml").read_text())["defaults"]
    return {k: str(v) for entry in defaults if isinstance(entry, dict) for k, v in entry.items()}


def config_reference() -> str:
    defaults = _default_options()
    out = ["# Configuration reference", "",
           "Generated from the schema dataclasses and the option files in `conf/` "
           "(`python -m downsample_study.config.reference config`). Set a key on the command "
           "line as `key=value` (`dataset.batch_size=128`), choose an option as `group=option` "
           "(`downsample=blurpool`). Every key is typed: a wrong key, type or value is refused "
           "in one line naming it.", "",
           "## Groups", "", "| group | options | default |", "| --- | --- | --- |"]
    groups = [*CHOICES, "logger", "evaluation", "accelerator", "callbacks", "experiment",
              "variant",
              "hydra/launcher", "hydra/sweeper"]
    for group in groups:
        names = ", ".join(f"`{p.stem}`" for p in _options(group))
        default = defaults.get(group)
        shown = f"`{default}`" if default not in (None, "None") else (
            "Hydra's basic one" if group.startswith("hydra/") else "none")
        out.append(f"| `{group}` | {names} | {shown} |")
    out += ["", "## Keys of every job", ""]
    fixed = [f for f in dataclasses.fields(Config)
             if f.name not in {*CHOICES, "logger", "trainer", "evaluation"}]
    rows = key_rows(Config)
    out += _table([row for row in rows if row.split("`")[1].split(".")[0] in
                   {f.name for f in fixed}])
    for group, registry in CHOICES.items():
        out += [f"## {group}", ""]
        for path in _options(group):
            out += [f"### `{group}={path.stem}`", "", yaml_summary(path), ""]
            out += _table(key_rows(registry.schemas[path.stem], f"{group}."))
    out += ["## evaluation", "", "What a job measures after its test pass, on the selected "
            "checkpoint (`mode=eval` measures a finished job again). Each evaluation is a node "
            "`evaluation.<name>`; `evaluation.<name>.enabled=true` switches it on, "
            "`evaluation=all` switches every one on, `evaluation=none` every one off.", ""]
    for name, schema in sorted(EVALUATIONS.schemas.items()):
        out += [f"### `evaluation.{name}`", "", " ".join((schema.__doc__ or "").split()), ""]
        out += _table(key_rows(schema, f"evaluation.{name}."))
    out += ["## logger", "", "One logger, several (`logger=[wandb,tensorboard]`) or none "
            "(`logger=none`). Each chosen logger's keys are `logger.<name>.<key>`.", ""]
    for path in _options("logger"):
        out += [f"### `logger={path.stem}`", "", yaml_summary(path), ""]
        if path.stem in LOGGERS and (rows := key_rows(LOGGERS.schemas[path.stem],
                                                      f"logger.{path.stem}.")):
            out += _table(rows)
    out += ["## trainer", "",
            "Any keyword argument of `lightning.Trainer` as `trainer.<name>=<value>`, checked "
            "against its signature, except the ones the framework sets itself: "
            + ", ".join(f"`{name}`" for name in sorted(MANAGED_TRAINER_ARGS))
            + ". `conf/config.yaml` sets `max_epochs`, `log_every_n_steps`, "
            "`num_sanity_val_steps` and `enable_model_summary`; `accelerator=` chooses the "
            "device:", ""]
    for group in ("accelerator", "callbacks", "experiment", "variant", "hydra/launcher",
                  "hydra/sweeper"):
        if group != "accelerator":
            out += [f"## {group}", ""]
        out += ["| option | what it is |", "| --- | --- |"]
        out += [f"| `{group}={p.stem}` | {yaml_summary(p)} |" for p in _options(group)]
        out.append("")
    return "\n".join(out)


def results_reference() -> str:
    out = ["# `results.json` reference", "",
           "Generated from `results.py` (`python -m downsample_study.config.reference results`)."
           f" Every job writes one `results.json`, at schema version {SCHEMA_VERSION}; a file "
           "of a newer version is refused in one line naming it.", ""]
    comments = field_comments(Status)
    out += ["## status", "", "| status | what it means |", "| --- | --- |"]
    out += [f"| `{s.value}` | {comments.get(s.name, '')} |" for s in Status]
    out += ["", "## Fields", ""]
    out += _table(key_rows(Results))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    pages = {"config": config_reference, "results": results_reference}
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in pages:
        print(f"usage: python -m downsample_study.config.reference {'|'.join(pages)}",
              file=sys.stderr)
        return 2
    print(pages[args[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
