"""``hydra/sweeper=packed``: Hydra's basic sweep, the jobs that differ only in ``seed`` packed.

The sweeper packs because only it sees every job before any is launched; the launcher stays
the user's choice. Each member writes its solo job's folder, so a re-run without packing finds
the same jobs done. The plugin: ``hydra_plugins/downsample_study_sweeper``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import OmegaConf

from downsample_study import internals
from downsample_study.config.schema import PackConfig
from downsample_study.config.store import config_loader
from downsample_study.layout import PACKS_DIR
from downsample_study.sweeps.naming import override_key


def planned_jobs(hydra: Any) -> list[list[str]] | None:
    """The overrides of every job of a multirun, from its ``hydra`` node (the sweep file's),
    expanded as Hydra's basic sweeper (and so the packed and tuned ones) expands them. None for
    other sweepers (one that plans as it goes) or overrides it cannot expand."""
    target = str(OmegaConf.select(hydra, "sweeper._target_", default="") or "")
    if not target.endswith(("BasicSweeper", "PackedSweeper", "TunedSweeper")):
        return None
    return internals.basic_sweep_jobs(sweep_overrides(hydra), config_loader())


def sweep_overrides(hydra: Any) -> list[str]:
    """A multirun's overrides in its sweeper's order: ``hydra.sweeper.params``, then the CLI's."""
    params = [f"{k}={v}" for k, v in (hydra.sweeper.get("params") or {}).items()]
    return [*params, *hydra.overrides.task]


def alone(config: Any) -> str | None:
    """Why a sweep's jobs run alone, neither packed nor tuned; None if they are packed."""
    if str(config.get("mode", "train")) != "train":
        return f"mode={config.mode} trains nothing"
    if config.trainer.get("fast_dev_run"):
        return "smoke tests (trainer.fast_dev_run) run alone"
    return None


def plan(jobs: Sequence[Sequence[str]], size: int | Callable[[list[str]], int]
         ) -> list[list[str]]:
    """The jobs to launch: the seeds of each variant in as few packs of up to ``size`` (or
    ``size(overrides)`` of the variant's first job) as there can be, of even sizes (10 seeds at
    8: 5 + 5, which side by side end together); a variant of one seed, or a remainder of one,
    runs alone."""
    variants: dict[tuple[str, ...], list[tuple[list[str], str]]] = {}
    for overrides in jobs:
        seeds = [o.split("=", 1)[1] for o in overrides if override_key(o) == "seed"]
        rest = tuple(sorted(o for o in overrides if override_key(o) != "seed"))
        variants.setdefault(rest if seeds else (*rest, str(id(overrides))), []).append(
            (list(overrides), seeds[0] if seeds else ""))
    launched = []
    for rest, members in variants.items():
        most = size(members[0][0]) if callable(size) else size
        even = math.ceil(len(members) / math.ceil(len(members) / most))
        for start in range(0, len(members), even):
            chunk = members[start:start + even]
            if len(chunk) == 1:
                launched.append(chunk[0][0])
                continue
            seeds = [seed for _, seed in chunk]
            digest = hashlib.sha1("\n".join([*rest, *seeds]).encode()).hexdigest()[:10]
            pack_id = f"seeds{seeds[0]}-{seeds[-1]}-{digest}"
            launched.append([*chunk[0][0], f"pack.seeds=[{','.join(seeds)}]",
                             f"pack.id={pack_id}", f"hydra.sweep.subdir={PACKS_DIR}/{pack_id}"])
    return launched


# CPU: the best ratio of the 2-core machine's measurements (benchmarks/RESULTS.md,
# packed/sequential@K); CUDA: not measured yet, a guess that keeps a GPU busier than one LeNet
AUTO_SIZE = {"cpu": 8, "cuda": 32}
# On CPU a pack saves per-operation overhead, which a network of much arithmetic per image
# hardly has: at K = 8, 0.7–4.2 MFLOP forward per image gained 1.27–2.11×, 82–410 MFLOP
# (ResNet-20, All-CNN-C) lost 7–8 % (benchmarks/RESULTS.md). Between them, a round line.
CPU_PACKS_PAY_BELOW_FLOPS = 20e6


def on_cuda(accelerator: Any) -> bool:
    """Whether jobs of ``trainer.accelerator`` train on a CUDA GPU."""
    import torch

    return str(accelerator) in ("gpu", "cuda") or (
        str(accelerator) == "auto" and torch.cuda.is_available())


def pack_size(size: Any, accelerator: Any, flops_forward: float | None = None) -> int:
    """``pack.size`` as a number of members, ``auto`` as the best measured for the device the
    jobs train on and, on CPU, the network's forward FLOPs per image where known: 1 (no
    packing) for a network that packing does not speed up there. A ``ConfigError`` if it is
    neither a number nor ``auto``."""
    size = PackConfig(size=str(size)).size
    if size != "auto":
        return int(size)
    if on_cuda(accelerator):
        return AUTO_SIZE["cuda"]
    if flops_forward is not None and flops_forward >= CPU_PACKS_PAY_BELOW_FLOPS:
        return 1
    return AUTO_SIZE["cpu"]


def network_flops(config: Any) -> float | None:
    """Forward FLOPs per image of a job's network (its composed config), or None where the
    config does not build (the job itself then says why)."""
    from omegaconf.errors import OmegaConfBaseException

    from downsample_study.config.validate import validate
    from downsample_study.data.datasets import DATASETS
    from downsample_study.errors import UserError
    from downsample_study.nets.models import build_model
    from downsample_study.nets.shapes import forward_flops

    job = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    try:
        cfg = validate(job)
        info = DATASETS[cfg.dataset.name].configured(cfg.dataset)
        net = build_model(cfg.model, cfg.downsample, info.input_shape, info.num_classes)
    except (UserError, OmegaConfBaseException):
        return None
    return forward_flops(net, info.input_shape)
