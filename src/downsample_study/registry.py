"""Name → builder registries (cf. timm's layer factories): operators, models, datasets,
optimizers and loggers are each one registry. A new entry is one decorated builder (plus one
YAML file in ``conf/<kind>/``); the dataclass registered with it is the schema Hydra checks
that option's config node against at composition (``config/store.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from downsample_study.errors import ConfigError

B = TypeVar("B")


class Registry(Generic[B]):
    def __init__(self, kind: str):
        self.kind = kind
        self.builders: dict[str, B] = {}
        self.schemas: dict[str, type] = {}  # name → the dataclass its config node must match

    def add(self, name: str, builder: B, schema: type) -> B:
        if name in self.builders:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self.builders[name] = builder
        self.schemas[name] = schema
        return builder

    def register(self, name: str, schema: type) -> Callable[[B], B]:
        """Decorator form of ``add``."""
        return lambda builder: self.add(name, builder, schema)

    def names(self) -> list[str]:
        return sorted(self.builders)

    def __contains__(self, name: object) -> bool:
        return name in self.builders

    def __getitem__(self, name: str) -> B:
        self._check(name)
        return self.builders[name]

    def schema(self, name: str) -> type:
        self._check(name)
        return self.schemas[name]

    def _check(self, name: object) -> None:
        if name not in self.builders:
            raise ConfigError(
                f"{self.kind}.name: unknown {self.kind} {name!r}; allowed: "
                f"{', '.join(self.names())} (choose one with {self.kind}=NAME)"
            )
