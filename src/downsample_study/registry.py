"""Name → builder registries (cf. timm's layer factories): one per kind of entry.

A new entry is one decorated builder plus one YAML file in ``conf/<kind>/``; its dataclass is
the schema Hydra checks that node against. Schemas live apart from builders, in torch-free
``<wing>/configs.py``, so that composing a config does not wait for torch to load.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from downsample_study.errors import ConfigError

B = TypeVar("B")

# a schema field's metadata: it says how or where a job runs, not what it trains or measures
# (config/defining.py): runs that differ in it alone are the same job
INCIDENTAL = {"incidental": True}


class Registry(Generic[B]):
    def __init__(self, kind: str, default_schema: type, builders_module: str,
                 built_in: dict[str, type]):
        """``built_in``: each built-in entry's schema; their builders register when
        ``builders_module`` is imported."""
        self.kind = kind
        self.default_schema = default_schema  # the schema of an entry registered without one
        self.builders_module = builders_module
        self.builders: dict[str, B] = {}
        # name → the dataclass its config node must match
        self.schemas: dict[str, type] = dict(built_in)

    def add(self, name: str, builder: B, schema: type | None = None) -> B:
        """Register ``builder`` as ``name``, with ``schema`` (by default the one it was
        declared with, else the kind's default)."""
        if name in self.builders:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        declared = self.schemas.get(name)
        if schema is not None and declared is not None and schema is not declared:
            raise ValueError(f"{self.kind} {name!r} is declared with {declared.__name__}, "
                             f"not {schema.__name__}")
        self.schemas[name] = schema or declared or self.default_schema
        self.builders[name] = builder
        return builder

    def register(self, name: str, schema: type | None = None) -> Callable[[B], B]:
        """Decorator form of ``add``."""
        return lambda builder: self.add(name, builder, schema)

    def names(self) -> list[str]:
        return sorted(self.schemas)

    def __contains__(self, name: object) -> bool:
        return name in self.schemas

    def __getitem__(self, name: str) -> B:
        self._check(name)
        if name not in self.builders:
            importlib.import_module(self.builders_module)
        if name not in self.builders:
            raise ValueError(f"{self.kind} {name!r} is declared but {self.builders_module} "
                             "registers no builder for it")
        return self.builders[name]

    def schema(self, name: str) -> type:
        self._check(name)
        return self.schemas[name]

    def _check(self, name: object) -> None:
        if name not in self.schemas:
            raise ConfigError(
                f"{self.kind}.name: unknown {self.kind} {name!r}; allowed: "
                f"{', '.join(self.names())} (choose one with {self.kind}=NAME)"
            )
