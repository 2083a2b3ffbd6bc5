"""The experimental variable: downsampling operators, behind one registry, one module per
family. A new operator: a ``@register_downsample`` builder and a ``conf/downsample/`` file."""

from downsample_study.nets.operators import (
    frequency,
    importance,
    lowpass,
    polyphase,
    pooling,
    stochastic,
    strided,
)
from downsample_study.nets.operators.core import (
    available_downsamples,
    create_downsample,
    downsample_config,
    register_downsample,
)
from downsample_study.nets.points import Downsample, DownsamplePoint

__all__ = ["Downsample", "DownsamplePoint", "available_downsamples", "create_downsample",
           "downsample_config", "frequency", "importance", "lowpass", "polyphase", "pooling",
           "register_downsample", "stochastic", "strided"]
