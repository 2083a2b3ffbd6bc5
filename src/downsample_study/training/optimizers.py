"""Optimizers, behind one registry: a new one is a ``@register_optimizer`` builder (its config
dataclass the one source of its defaults) and a YAML file in ``conf/optimizer/``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import torch

from downsample_study.console import say
from downsample_study.training.configs import (
    OPTIMIZERS,
    AdamConfig,
    OptimizerConfig,
    Schedule,
    SchedulerConfig,
    SGDConfig,
)

Builder = Callable[[OptimizerConfig, Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


def register_optimizer(name: str, schema: type | None = None) -> Callable[[Builder], Builder]:
    """Register a builder as optimizer ``name``; ``schema``, its config dataclass (default:
    the built-in's, else ``OptimizerConfig``)."""
    return OPTIMIZERS.register(name, schema)


def create_optimizer(cfg: OptimizerConfig, params) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.name](cfg, params)


def create_scheduler(cfg: SchedulerConfig, optimizer: torch.optim.Optimizer,
                     total_steps: int) -> dict[str, Any]:
    """``cfg``'s torch scheduler for ``optimizer`` as Lightning takes it (stepped per epoch or
    per optimizer step); ``cfg.name`` is not ``none``."""
    schedulers = torch.optim.lr_scheduler
    if cfg.name == Schedule.step:
        return {"scheduler": schedulers.StepLR(optimizer, cfg.step_size, cfg.gamma),
                "interval": "epoch"}
    if cfg.name == Schedule.multistep:
        return {"scheduler": schedulers.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma),
                "interval": "epoch"}
    if cfg.name == Schedule.cosine:
        scheduler = schedulers.CosineAnnealingLR(optimizer, T_max=total_steps,
                                                 eta_min=cfg.min_lr)
    else:
        scheduler = schedulers.OneCycleLR(optimizer, max_lr=[g["lr"] for g in
                                                            optimizer.param_groups],
                                          total_steps=total_steps, pct_start=cfg.warmup)
    return {"scheduler": scheduler, "interval": "step"}


@register_optimizer("adam")
def adam(cfg: AdamConfig, params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                            weight_decay=cfg.weight_decay, fused=cfg.fused or None)


@register_optimizer("sgd")
def sgd(cfg: SGDConfig, params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


MIXED_PRECISION = ("16-mixed", "bf16-mixed", "16", 16, "bf16")


def unfused_to_clip(cfg: OptimizerConfig, trainer: dict[str, Any]) -> OptimizerConfig:
    """``cfg``, unfused where it must clip: a fused optimizer unscales its gradients inside its
    own kernel, so under mixed precision Lightning cannot clip them first."""
    clip = trainer.get("gradient_clip_val")
    if not (clip and trainer.get("precision") in MIXED_PRECISION and getattr(cfg, "fused", False)):
        return cfg
    say(f"optimizer.fused: off, so that trainer.gradient_clip_val={clip} can clip under "
        f"trainer.precision={trainer['precision']} (a fused optimizer unscales its gradients "
        f"itself)")
    return dataclasses.replace(cfg, fused=False)
