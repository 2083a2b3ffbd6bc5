"""Range checks for config values that type-check but make no sense: a ``ConfigError``.

Called where the dataclass is built, so a hand-built config is checked like a composed one."""

from __future__ import annotations

from downsample_study.errors import ConfigError


def at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


def above(key: str, value: float, low: float) -> None:
    if value <= low:
        raise ConfigError(f"{key}: must be > {low}, got {value}")


def probability(key: str, value: float) -> None:
    """A probability that leaves something: in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}: a probability in [0, 1) is required, got {value}")
