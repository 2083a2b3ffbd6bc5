"""One line per way Hydra or OmegaConf rejects a config: the key, what is wrong, what is allowed.

E.g. ``downsample.kernel_sise: no such key (did you mean kernel_size?); keys of downsample: ...``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from hydra.errors import (
    CompactHydraException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from downsample_study.errors import no_such_key

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


# OmegaConf's wording for a value of the wrong type or outside an enum, in our words
_REWORDED = (
    (re.compile(r"Invalid value '(?P<value>.*)', expected one of \[(?P<allowed>.*)\]"),
     "unknown value '{value}'; allowed: {allowed}"),
    (re.compile(r"Value '(?P<value>.*)' of type '\w+' could not be converted to Integer"),
     "expected an integer, got '{value}'"),
    (re.compile(r"Value '(?P<value>.*)' of type '\w+' could not be converted to Float"),
     "expected a number, got '{value}'"),
    (re.compile(r"Value '(?P<value>.*)' is not a valid bool"),
     "expected true or false, got '{value}'"),
    (re.compile(r"Invalid value assigned: (?P<type>\w+) is not a ListConfig, list or tuple"),
     "expected a list ([a, b]), got type {type}"),
    (re.compile(r"Cannot assign (?P<type>\w+) to Dict\["),
     "expected a mapping ({{key: value}}), got type {type}"),
    # a node of options given one value: evaluation.shift=false (its flat form of before)
    (re.compile(r"Invalid type assigned: (?P<type>\w+) is not a subclass of (?P<node>\w+)\. "
                r"value: (?P<value>.*)"),
     "a node of options ({node}), not a value; set one of its keys (an evaluation: "
     "{key}.enabled=false)"),
)


def _reworded(message: str, key: str) -> str:
    for pattern, wording in _REWORDED:
        if found := pattern.match(message):
            return wording.format(**found.groupdict(), key=key)
    return message


def node_message(err: OmegaConfBaseException, prefix: str = "") -> str:
    """One line for an OmegaConf error on a node; ``prefix`` is the node's own key when the
    error's keys are relative to it."""
    key = next((str(k) for k in (err.full_key, err.key) if k not in (None, "")), "")
    key = f"{prefix}[{key}]" if prefix and key.isdigit() else (
        ".".join(part for part in (prefix, key) if part))
    owner = err.object_type if isinstance(err.object_type, type) else None
    if isinstance(err, (ConfigAttributeError, ConfigKeyError)):
        # a schema's node lists its fields; a closed plain one (a sweeper's YAML), its keys
        parent = err.parent_node
        keys = (sorted(f.name for f in dataclasses.fields(owner)) if owner is not None
                and dataclasses.is_dataclass(owner) else sorted(map(str, parent.keys()))
                if isinstance(parent, DictConfig) and parent.keys() else None)
        if keys is not None:
            return no_such_key(key, keys, parent=key.rpartition(".")[0] or prefix)
    message = _reworded(err.msg.splitlines()[0], key)
    return f"{key}: {message}" if key else message


# Hydra's words for a group chosen twice, which from the command line means ``+group=option``
# on a group the defaults list has: Hydra's convention is ``group=option`` for that
_CHOSEN_TWICE = re.compile(r"Multiple values for (?P<group>\S+)\. To override a value use "
                           r"'override (?P=group): (?P<option>.+)'")


def _plus_on_a_default(err: BaseException, overrides: Sequence[str]) -> str | None:
    found = _CHOSEN_TWICE.match(str(err)) if isinstance(err, HydraException) else None
    if found is None or f"+{found['group']}={found['option']}" not in overrides:
        return None
    group, option = found["group"], found["option"]
    return (f"+{group}={option}: {group} is in the defaults list already (null or an option), "
            f"so choose it without '+': {group}={option} ('+' adds a group the defaults list "
            f"lacks)")


def _group_options(missing: str) -> list[str]:
    """The options of the group of ``missing`` (``group/option``), which Hydra leaves out of
    the error for an option of a list (``logger=[csv,bogus]``)."""
    from downsample_study.config.store import config_loader

    return config_loader().get_group_options(missing.rpartition("/")[0])


def composition_message(err: BaseException, overrides: Sequence[str] = ()) -> str | None:
    """The one-line message for an error Hydra raised while composing ``overrides`` (the
    command line's); None for others."""
    if (message := _plus_on_a_default(err, overrides)) is not None:
        return message
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and (
            options := err.options or _group_options(err.missing_cfg_file)):
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option}: no such option; allowed: {', '.join(sorted(options))}"
    if isinstance(err, OverrideParseException):
        reason = str(err.message).splitlines()[0]
        key, _, value = str(err.override).partition("=")
        quote = (f"; quote a value that holds '=' or ',': {key}=\"'{value}'\""
                 if any(c in value for c in "=,") else "")
        return (f"{err.override}: not a valid override ({reason}){quote}; the grammar: "
                f"{GRAMMAR}")
    if isinstance(err.__cause__, OmegaConfBaseException) and isinstance(err, HydraException):
        # an override's value merged as a node: its keys are relative to the override's
        merged = re.match(r"Error merging override ([\w.]+)=", str(err))
        inside = merged is not None and not str(err.__cause__.full_key or "").startswith(merged[1])
        return node_message(err.__cause__, prefix=merged[1] if inside else "")
    if isinstance(err, (CompactHydraException, OmegaConfBaseException)):
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        return "; ".join(lines)
    return None
