"""``hydra/sweeper=packed``: Hydra's basic sweep, the jobs that differ only in ``seed`` packed.

The sweeper packs because only it sees every job before any is launched; the launcher stays
the user's choice. Each member writes its solo job's folder, so a re-run without packing finds
the same jobs done. The plugin: ``hydra_plugins/downsample_study_sweeper``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
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


def plan(jobs: Sequence[Sequence[str]], size: int) -> list[list[str]]:
    """The jobs to launch: the seeds of each variant in as few packs of up to ``size`` as
    there can be, of even sizes (10 seeds at 8: 5 + 5, which side by side end together); a
    variant of one seed, or a remainder of one, runs alone."""
    variants: dict[tuple[str, ...], list[tuple[list[str], str]]] = {}
    for overrides in jobs:
        seeds = [o.split("=", 1)[1] for o in overrides if override_key(o) == "seed"]
        rest = tuple(sorted(o for o in overrides if override_key(o) != "seed"))
        variants.setdefault(rest if seeds else (*rest, str(id(overrides))), []).append(
            (list(overrides), seeds[0] if seeds else ""))
    launched = []
    for rest, members in variants.items():
        even = math.ceil(len(members) / math.ceil(len(members) / size))
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


def pack_size(size: Any, accelerator: Any) -> int:
    """``pack.size`` as a number of members, ``auto`` as the best measured for the device the
    jobs train on (a ``ConfigError`` if it is neither)."""
    import torch

    size = PackConfig(size=str(size)).size
    if size != "auto":
        return int(size)
    cuda = str(accelerator) in ("gpu", "cuda") or (
        str(accelerator) == "auto" and torch.cuda.is_available())
    return AUTO_SIZE["cuda" if cuda else "cpu"]
