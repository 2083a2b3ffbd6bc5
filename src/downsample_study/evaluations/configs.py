"""The evaluations' schemas and registry, torch-free: ``evaluation.<name>.<key>``.

Each evaluation is one registered builder (``base.py``'s contract) with one schema here; every
schema has ``enabled``. ``evaluation_schema()`` gathers them into the ``evaluation`` node.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, make_dataclass

from downsample_study.checks import above, at_least
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
from downsample_study.registry import Registry


class ShiftFill(Choice):
    zero = "zero"  # what the shift uncovers is raw pixel 0, what leaves the frame is lost
    circular = "circular"  # the image wraps around


@dataclass(frozen=True)
class DataShape:
    """What an evaluation's settings are checked against: the job's dataset."""

    channels: int
    size: int
    num_classes: int


@dataclass
class EvaluationSettings:
    """What every evaluation has: whether it runs."""

    enabled: bool = False  # run it after the test pass (evaluation.<name>.enabled=true)

    def check(self, key: str, data: DataShape) -> None:
        """A ``ConfigError`` naming ``key.<field>`` where a value cannot fit ``data``."""


def _fills(modes: list, key: str) -> list[ShiftFill]:
    found = [as_choice(ShiftFill, mode, key) for mode in modes]
    if not found:
        raise ConfigError(f"{key}: empty, so the evaluation measures nothing; list zero and/or "
                          f"circular")
    return found


def _within_image(key: str, shift: int, data: DataShape) -> None:
    if shift >= data.size:
        raise ConfigError(f"{key}: a shift of {shift} px moves a {data.size}×{data.size} image "
                          f"out of the frame; at most {data.size - 1}")


@dataclass
class ShiftConfig(EvaluationSettings):
    """Accuracy and consistency under two random shifts per image (Zhang 2019)."""

    enabled: bool = True
    max: int = 3  # offsets drawn uniformly from [-max, max] pixels per axis
    modes: list[ShiftFill] = field(default_factory=lambda: [ShiftFill.zero, ShiftFill.circular])
    samples: int = 1  # independent pairs of shifts per test image
    seed: int = 0  # the same shifts in every run, so variants are compared on equal terms

    def __post_init__(self) -> None:
        self.modes = _fills(self.modes, "evaluation.shift.modes")
        at_least("evaluation.shift.max", self.max, 0)
        at_least("evaluation.shift.samples", self.samples, 1)

    def check(self, key: str, data: DataShape) -> None:
        _within_image(f"{key}.max", self.max, data)


@dataclass
class FeatureMapsConfig(EvaluationSettings):
    """A figure of the activations around each downsampling stage."""

    enabled: bool = True
    images: int = 4  # the first test image of each of the first N classes
    channels: int = 4  # channels shown per activation

    def __post_init__(self) -> None:
        at_least("evaluation.feature_maps.images", self.images, 1)
        at_least("evaluation.feature_maps.channels", self.channels, 1)

    def check(self, key: str, data: DataShape) -> None:
        if self.images > data.num_classes:
            raise ConfigError(f"{key}.images: one image per class, so 1 to {data.num_classes}; "
                              f"got {self.images}")


@dataclass
class ShiftGridConfig(EvaluationSettings):
    """Accuracy at every integer offset within ±radius: worst case, ripple, flips, fidelity."""

    radius: int = 3  # offsets (dy, dx) in [-radius, radius]²
    modes: list[ShiftFill] = field(default_factory=lambda: [ShiftFill.circular, ShiftFill.zero])
    images: int = 1000  # the first N test images (0: all)

    def __post_init__(self) -> None:
        self.modes = _fills(self.modes, "evaluation.shift_grid.modes")
        at_least("evaluation.shift_grid.radius", self.radius, 1)
        at_least("evaluation.shift_grid.images", self.images, 0)

    def check(self, key: str, data: DataShape) -> None:
        _within_image(f"{key}.radius", self.radius, data)


@dataclass
class EquivarianceConfig(EvaluationSettings):
    """At each downsampling point: shift-then-compute against compute-then-shift."""

    max: int = 8  # circular shifts of 1..max px, along each axis
    images: int = 64  # the first N test images

    def __post_init__(self) -> None:
        at_least("evaluation.equivariance.max", self.max, 1)
        at_least("evaluation.equivariance.images", self.images, 1)

    def check(self, key: str, data: DataShape) -> None:
        _within_image(f"{key}.max", self.max, data)


@dataclass
class AliasingConfig(EvaluationSettings):
    """The share of each downsampling point's input energy above its output's Nyquist."""

    images: int = 64  # the first N test images
    at_init: bool = True  # also measure the network as initialised (same seed), before training

    def __post_init__(self) -> None:
        at_least("evaluation.aliasing.images", self.images, 1)


@dataclass
class CorruptionsConfig(EvaluationSettings):
    """Accuracy on corrupted test images: MNIST-C's set (grey) or CIFAR-10-C's (RGB)."""

    names: list[str] = field(default_factory=list)  # empty: every corruption for the channels
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])  # of 1 to 5
    images: int = 1000  # the first N test images (0: all)
    seed: int = 0  # the corruptions' random draws: the same in every run

    def __post_init__(self) -> None:
        if not self.severities or any(not 1 <= s <= 5 for s in self.severities):
            raise ConfigError(f"evaluation.corruptions.severities: a list of 1 to 5, got "
                              f"{list(self.severities)}")
        at_least("evaluation.corruptions.images", self.images, 0)
        at_least("evaluation.corruptions.seed", self.seed, 0)

    def check(self, key: str, data: DataShape) -> None:
        from downsample_study.evaluations.corruption_functions import corruption_names

        corruption_names(self.names, data.channels, f"{key}.names")


@dataclass
class AttacksConfig(EvaluationSettings):
    """Accuracy under FGSM and PGD (L∞) at budgets in pixel units of [0, 1]."""

    # L∞ budgets in pixel units of [0, 1]: 1, 2, 4 and 8 /255
    epsilons: list[float] = field(default_factory=lambda: [1 / 255, 2 / 255, 4 / 255, 8 / 255])
    pgd_steps: int = 10  # gradient steps of PGD, from a random start in the ε-ball
    pgd_step_size: float = 2.5  # each PGD step, in units of ε / pgd_steps (Madry et al.)
    images: int = 1000  # the first N test images (0: all)
    seed: int = 0  # PGD's random start

    def __post_init__(self) -> None:
        if not self.epsilons:
            raise ConfigError("evaluation.attacks.epsilons: empty; list budgets in (0, 1]")
        if any(not 0 < eps <= 1 for eps in self.epsilons):
            raise ConfigError(f"evaluation.attacks.epsilons: budgets in (0, 1] (pixel units; "
                              f"8/255 = {8 / 255:.4f}), got {list(self.epsilons)}")
        if len({f"{eps * 255:g}" for eps in self.epsilons}) < len(self.epsilons):
            raise ConfigError(f"evaluation.attacks.epsilons: two budgets round to the same "
                              f"ε·255 (their key), got {list(self.epsilons)}")
        at_least("evaluation.attacks.pgd_steps", self.pgd_steps, 1)
        above("evaluation.attacks.pgd_step_size", self.pgd_step_size, 0)
        at_least("evaluation.attacks.images", self.images, 0)


@dataclass
class CostConfig(EvaluationSettings):
    """Inference latency (median of repeats) and peak memory, on the job's device."""

    batch_sizes: list[int] = field(default_factory=lambda: [1, 64])  # a latency for each
    repeats: int = 20  # timed forward passes per batch size: their median is reported
    warmup: int = 3  # untimed forward passes before them

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"evaluation.cost.batch_sizes: a list of sizes >= 1, got "
                              f"{list(self.batch_sizes)}")
        at_least("evaluation.cost.repeats", self.repeats, 1)
        at_least("evaluation.cost.warmup", self.warmup, 0)


EVALUATIONS: Registry = Registry(
    "evaluation", EvaluationSettings, "downsample_study.evaluations.running", {
        "shift": ShiftConfig, "feature_maps": FeatureMapsConfig, "shift_grid": ShiftGridConfig,
        "equivariance": EquivarianceConfig, "aliasing": AliasingConfig,
        "corruptions": CorruptionsConfig, "attacks": AttacksConfig, "cost": CostConfig,
    })


def evaluation_schema() -> type:
    """The ``evaluation`` node: one field per registered evaluation, typed by its schema."""
    return _schema(tuple(sorted(EVALUATIONS.schemas.items())))


class Evaluations:
    """The base of ``evaluation_schema()``'s dataclass: pickled as its nodes (a process that
    DDP spawns gets them), which rebuild it there, as that class is made at run time."""

    def __reduce__(self):
        return rebuilt, ({f.name: getattr(self, f.name) for f in fields(self)},)


def rebuilt(nodes: dict[str, EvaluationSettings]) -> Evaluations:
    """The ``evaluation`` node of these evaluations' settings."""
    return _schema(tuple(sorted((name, type(node)) for name, node in nodes.items())))(**nodes)


@functools.cache
def _schema(entries: tuple[tuple[str, type], ...]) -> type:
    return make_dataclass("EvaluationConfig", [(name, schema, field(default_factory=schema))
                                               for name, schema in entries],
                          bases=(Evaluations,))


def enabled(evaluation: object) -> list[tuple[str, EvaluationSettings]]:
    """The (name, settings) of each evaluation switched on, in the registry's order."""
    return [(f.name, getattr(evaluation, f.name)) for f in fields(evaluation)
            if getattr(evaluation, f.name).enabled]


# the flat keys of the evaluation node before each evaluation had its own (2026-12-07)
FLAT_KEYS = {"shift": ("shift", "enabled"), "shift_max": ("shift", "max"),
             "shift_modes": ("shift", "modes"), "shift_samples": ("shift", "samples"),
             "shift_seed": ("shift", "seed"), "feature_maps": ("feature_maps", "enabled"),
             "feature_map_images": ("feature_maps", "images"),
             "feature_map_channels": ("feature_maps", "channels")}


def current_evaluation(node: dict) -> dict:
    """A saved ``evaluation`` node as it is written now: its flat keys of before (``shift:
    true``, ``shift_max: 3``) moved into the evaluations' own nodes."""
    current: dict = {}
    for key, value in node.items():
        if isinstance(value, dict):
            current.setdefault(key, {}).update(value)
        elif key in FLAT_KEYS:
            name, option = FLAT_KEYS[key]
            current.setdefault(name, {})[option] = value
        else:
            current[key] = value
    return current
