"""Enum-typed config choices: Hydra checks them, and ``as_choice`` does for hand-built configs."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from downsample_study.errors import ConfigError

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """A string-valued choice that prints as its value (``max``, not ``BlurVariant.max``)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @classmethod
    def allowed(cls) -> str:
        return ", ".join(member.value for member in cls)


def as_choice(kind: type[C], value: object, key: str) -> C:
    """``value`` as a member of ``kind``, else a ``ConfigError`` naming ``key``."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{key}: unknown value {value!r}; allowed: {kind.allowed()}") from None
