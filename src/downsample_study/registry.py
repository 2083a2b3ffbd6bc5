"""Name → builder registries (cf. timm's layer factories): a new entry is one decorated
function, and its config schema is registered with it so ``config.validate`` can type-check
the node before anything is built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

B = TypeVar("B", bound=Callable)


class Registry(Generic[B]):
    def __init__(self, kind: str):
        self.kind = kind
        self.builders: dict[str, B] = {}
        self.schemas: dict[str, type] = {}  # name → the dataclass its config node must match

    def register(self, name: str, schema: type) -> Callable[[B], B]:
        def decorate(builder: B) -> B:
            self.builders[name] = builder
            self.schemas[name] = schema
            return builder

        return decorate

    def names(self) -> list[str]:
        return sorted(self.builders)

    def __getitem__(self, name: str) -> B:
        try:
            return self.builders[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            ) from None
