"""The optimizer and logger schemas and registries, free of torch: Hydra composes against
them before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from downsample_study.checks import above, at_least, probability
from downsample_study.choices import Choice, as_choice
from downsample_study.errors import ConfigError
from downsample_study.registry import INCIDENTAL, Registry

# --- optimizers -----------------------------------------------------------------------------


class Schedule(Choice):
    none = "none"  # optimizer.lr throughout
    cosine = "cosine"  # from optimizer.lr down to min_lr along a cosine, step by step
    step = "step"  # times gamma every step_size epochs
    multistep = "multistep"  # times gamma at each epoch in milestones (He et al. 2016's)
    onecycle = "onecycle"  # up to optimizer.lr over the warmup share of the steps, then down


@dataclass
class SchedulerConfig:
    """``optimizer.scheduler``: how the learning rate moves while a job trains (torch's
    schedulers; in a pack, every member's follows the same schedule, as its solo job's)."""

    # none: optimizer.lr throughout; cosine: down to min_lr, step by step; step: times gamma
    # every step_size epochs; multistep: times gamma at each of milestones; onecycle: up to
    # optimizer.lr over warmup, then down
    name: Schedule = Schedule.none
    min_lr: float = 0.0  # cosine: the rate it ends at
    step_size: int = 10  # step: epochs between two decays
    milestones: list[int] = field(default_factory=list)  # multistep: the epochs it decays after
    gamma: float = 0.1  # step, multistep: the factor of each decay
    warmup: float = 0.3  # onecycle: the share of the steps the rate rises for

    def __post_init__(self) -> None:
        self.name = as_choice(Schedule, self.name, "optimizer.scheduler.name")
        at_least("optimizer.scheduler.min_lr", self.min_lr, 0)
        at_least("optimizer.scheduler.step_size", self.step_size, 1)
        above("optimizer.scheduler.gamma", self.gamma, 0)
        milestones = list(self.milestones)
        if self.name == Schedule.multistep and not milestones:
            raise ConfigError("optimizer.scheduler.milestones: empty, so multistep never "
                              "decays; list the epochs to decay after, e.g. [91,137]")
        if milestones and (min(milestones) < 1 or milestones != sorted(set(milestones))):
            raise ConfigError(f"optimizer.scheduler.milestones: {milestones}; epochs of at "
                              f"least 1, each after the one before")
        above("optimizer.scheduler.warmup", self.warmup, 0)
        probability("optimizer.scheduler.warmup", self.warmup)


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3  # learning rate (with a scheduler: where it starts, or onecycle's peak)
    weight_decay: float = 0.0  # L2 penalty (torch.optim's)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)

    def __post_init__(self) -> None:
        above("optimizer.lr", self.lr, 0)
        at_least("optimizer.weight_decay", self.weight_decay, 0)
        if isinstance(self.scheduler, dict):  # from a checkpoint's plain hyper-parameters
            self.scheduler = SchedulerConfig(**self.scheduler)


@dataclass
class AdamConfig(OptimizerConfig):
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    # one kernel for the whole update, where torch supports it
    fused: bool = field(default=True, metadata=INCIDENTAL)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.betas) != 2:  # OmegaConf keeps a tuple as a list of any length
            raise ConfigError(f"optimizer.betas: a pair [beta1, beta2] is required, got "
                              f"{len(self.betas)} value{'' if len(self.betas) == 1 else 's'}")
        for i, beta in enumerate(self.betas):
            probability(f"optimizer.betas[{i}]", beta)


@dataclass
class SGDConfig(OptimizerConfig):
    lr: float = 0.01  # learning rate
    momentum: float = 0.9
    nesterov: bool = False  # Nesterov momentum

    def __post_init__(self) -> None:
        super().__post_init__()
        probability("optimizer.momentum", self.momentum)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("optimizer.nesterov: Nesterov momentum needs optimizer.momentum "
                              "> 0")


OPTIMIZERS: Registry = Registry("optimizer", OptimizerConfig,
                                "downsample_study.training.optimizers",
                                {"adam": AdamConfig, "sgd": SGDConfig})

# --- loggers --------------------------------------------------------------------------------


@dataclass
class LoggerConfig:
    """A logger's options: ``logger.<name>.<key>`` (the csv and tensorboard loggers have none)."""


class WandbMode(Choice):
    auto = "auto"  # online when credentials exist, otherwise offline with a notice
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class WandbConfig(LoggerConfig):
    """Keys left unset take W&B's environment variables (WANDB_PROJECT, WANDB_ENTITY,
    WANDB_RUN_GROUP, WANDB_JOB_TYPE, WANDB_MODE; WANDB_TAGS adds tags), else the defaults."""

    project: str | None = None  # default: WANDB_PROJECT, else downsample_study
    entity: str | None = None  # default: WANDB_ENTITY, else your W&B default
    mode: WandbMode = WandbMode.auto  # auto: online if logged in, else offline
    group: str | None = None  # default: WANDB_RUN_GROUP, else the sweep (its folder)
    job_type: str | None = None  # default: WANDB_JOB_TYPE, else the overrides without the seed
    tags: list[str] = field(default_factory=list)  # added to the dataset, operator and model
    # seconds wandb.init may take to reach the server before the run goes offline instead
    init_timeout: float = 30.0
    # checkpoints as W&B artifacts (WandbLogger's log_model): false, true (the selected and
    # the last one, at the end) or all (every one, as it is saved)
    log_model: Any = False
    # any other WandbLogger / wandb.init argument, e.g. {notes: "...", save_code: true}
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mode = as_choice(WandbMode, self.mode, "logger.wandb.mode")
        if self.log_model not in (False, True, "all"):
            raise ConfigError(f"logger.wandb.log_model: false, true or all, got {self.log_model!r}")


# not a choice of one: ``logger`` holds a node per logger chosen (logger=[wandb,tensorboard])
LOGGERS: Registry = Registry("logger", LoggerConfig, "downsample_study.training.wandb_tracker", {
    "wandb": WandbConfig, "csv": LoggerConfig, "tensorboard": LoggerConfig,
})
