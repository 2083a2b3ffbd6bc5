"""Optimizers, behind one registry: a new one is a builder decorated with
``@register_optimizer`` (with its config dataclass, the one source of its defaults) and one
YAML file in ``conf/optimizer/``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING

from downsample_study.checks import above, at_least, probability
from downsample_study.console import say
from downsample_study.errors import ConfigError
from downsample_study.registry import Registry


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        above("optimizer.lr", self.lr, 0)
        at_least("optimizer.weight_decay", self.weight_decay, 0)


@dataclass
class AdamConfig(OptimizerConfig):
    betas: tuple[float, float] = (0.9, 0.999)
    fused: bool = True  # one kernel for the whole update, where torch supports it

    def __post_init__(self) -> None:
        super().__post_init__()
        for i, beta in enumerate(self.betas):
            probability(f"optimizer.betas[{i}]", beta)


@dataclass
class SGDConfig(OptimizerConfig):
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        probability("optimizer.momentum", self.momentum)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("optimizer.nesterov: Nesterov momentum needs optimizer.momentum "
                              "> 0")


Builder = Callable[[OptimizerConfig, Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
OPTIMIZERS: Registry[Builder] = Registry("optimizer")


def register_optimizer(name: str, schema: type = OptimizerConfig):
    return OPTIMIZERS.register(name, schema)


def create_optimizer(cfg: OptimizerConfig, params) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.name](cfg, params)


@register_optimizer("adam", AdamConfig)
def adam(cfg: AdamConfig, params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                            weight_decay=cfg.weight_decay, fused=cfg.fused or None)


@register_optimizer("sgd", SGDConfig)
def sgd(cfg: SGDConfig, params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


MIXED_PRECISION = ("16-mixed", "bf16-mixed", "16", 16, "bf16")


def unfuse_to_clip(cfg: OptimizerConfig, trainer: dict[str, Any]) -> None:
    """A fused optimizer unscales its gradients inside its own kernel, so under mixed
    precision Lightning cannot clip them first: clip with the plain optimizer instead."""
    clip = trainer.get("gradient_clip_val")
    if clip and trainer.get("precision") in MIXED_PRECISION and getattr(cfg, "fused", False):
        cfg.fused = False
        say(f"optimizer.fused: off, so that trainer.gradient_clip_val={clip} can clip under "
            f"trainer.precision={trainer['precision']} (a fused optimizer unscales its "
            f"gradients itself)")
