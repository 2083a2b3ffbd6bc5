"""What a job measures after its test pass, on the selected checkpoint: ``evaluation``."""

from __future__ import annotations

from dataclasses import dataclass, field

from downsample_study.checks import at_least
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError


class ShiftFill(Choice):
    zero = "zero"  # what the shift uncovers is raw pixel 0, what leaves the frame is lost
    circular = "circular"  # the image wraps around


@dataclass
class EvaluationConfig:
    """Measurements after the test pass, on the selected checkpoint (cheap; each switchable)."""

    shift: bool = True  # accuracy and consistency under random shifts (Zhang 2019)
    shift_max: int = 3  # shifts are drawn uniformly from [-shift_max, shift_max] pixels per axis
    # how a shift fills the pixels it uncovers: zeros, or wrapped around (circular)
    shift_modes: list[ShiftFill] = field(
        default_factory=lambda: [ShiftFill.zero, ShiftFill.circular]
    )
    shift_samples: int = 1  # independent shift pairs per test image
    shift_seed: int = 0  # the same shifts for every run, so variants are compared on equal terms
    feature_maps: bool = True  # figure of the activations around each downsampling stage
    feature_map_images: int = 4  # the first test image of each of the first N classes
    feature_map_channels: int = 4  # channels shown per activation

    def __post_init__(self) -> None:
        self.shift_modes = [as_choice(ShiftFill, mode, "evaluation.shift_modes")
                            for mode in self.shift_modes]
        if self.shift and not self.shift_modes:
            raise ConfigError("evaluation.shift_modes: empty, so the shift evaluation measures "
                              "nothing; list zero and/or circular, or set evaluation.shift=false")
        for key, low in (("shift_max", 0), ("shift_samples", 1), ("feature_map_images", 1),
                         ("feature_map_channels", 1)):
            at_least(f"evaluation.{key}", getattr(self, key), low)
