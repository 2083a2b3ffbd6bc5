"""The ``hydra/sweeper=packed`` plugin (Hydra loads sweepers from ``hydra_plugins`` only): the
jobs ``downsample_study.sweeps.packing.plan`` plans, launched by the sweep's launcher."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

log = logging.getLogger("downsample_study")


class PackedSweeper(Sweeper):
    name = "packed"  # its hydra/sweeper option, for messages

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None):
        super().__init__()
        self.params = params or {}
        self.config: DictConfig | None = None
        self.launched = 0  # jobs launched before the packs (a tuned sweep's trials)

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def prepare(self, jobs: list[list[str]], sweep_dir: Path) -> list[list[str]]:
        """The jobs to pack and launch, from those the overrides expand to."""
        return jobs

    def sweep(self, arguments: list[str]) -> Any:
        from downsample_study import internals
        from downsample_study.errors import ConfigError
        from downsample_study.layout import SWEEP_FILE
        from downsample_study.storage import write_yaml
        from downsample_study.sweeps.packing import alone, on_cuda, pack_size, plan

        config = self.config
        overrides = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        jobs = internals.basic_sweep_jobs(overrides, self.hydra_context.config_loader)
        if jobs is None:
            raise ConfigError(f"hydra/sweeper={self.name}: these sweep overrides cannot be "
                              "expanded into jobs (use the basic sweeper's syntax: key=a,b or "
                              "key=range(n))")
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_yaml(sweep_dir / SWEEP_FILE, config)
        jobs = self.prepare(jobs, sweep_dir)
        if not jobs:  # stopped while preparing, or all it had to run (a tuned sweeper's studies)
            return []
        accelerator = config.trainer.get("accelerator", "auto")
        size = pack_size(config.pack.size, accelerator)
        if (alone_because := alone(config)) is not None:
            log.info("packing: off, %s", alone_because)
            size = 1
        elif str(config.pack.size) == "auto" and not on_cuda(accelerator):
            size = self.sized_by_network(config)
        launched = plan(jobs, size)
        packs = sum(any(o.startswith("pack.seeds=") for o in job) for job in launched)
        most = max((len(o.split(",")) for job in launched for o in job
                    if o.startswith("pack.seeds=")), default=1)
        log.info("packing: %d jobs as %d job(s), %d of them packs of up to %d seeds "
                 "(pack.size=%s)", len(jobs), len(launched), packs, most, config.pack.size)
        self.validate_batch_is_legal(launched)
        results = self.launcher.launch(launched, initial_job_idx=self.launched)
        for result in results:
            _ = result.return_value  # a job's exception, raised here as Hydra's sweeper does
        return [results]

    def sized_by_network(self, config: DictConfig):
        """``pack.size=auto`` on CPU for each variant: its network's forward FLOPs per image
        decide (a network of much arithmetic is not packed), from its job's composed config."""
        from downsample_study.sweeps.naming import override_key
        from downsample_study.sweeps.packing import (
            CPU_PACKS_PAY_BELOW_FLOPS,
            network_flops,
            pack_size,
        )

        loader, sizes = self.hydra_context.config_loader, {}

        def size(overrides: list[str]) -> int:
            key = tuple(sorted(o for o in overrides if override_key(o) != "seed"))
            if key not in sizes:
                job = loader.load_sweep_config(config, list(overrides))
                flops = network_flops(job)
                sizes[key] = pack_size("auto", "cpu", flops)
                if sizes[key] == 1:
                    log.info("packing: off for model=%s downsample=%s, %.0f MFLOP per image: "
                             "on CPU a pack pays only below %.0f (pack.size=N packs anyway)",
                             job.model.name, job.downsample.name, flops / 1e6,
                             CPU_PACKS_PAY_BELOW_FLOPS / 1e6)
            return sizes[key]

        return size
