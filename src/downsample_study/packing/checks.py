"""What a pack cannot do exactly as its members' solo jobs would: refused with the reason."""

from __future__ import annotations

from downsample_study.config.schema import JobMode
from downsample_study.config.validate import RunConfig

# optimizers whose update of a parameter element depends on that element alone
ELEMENTWISE_OPTIMIZERS = ("adam", "sgd")


def refusal(run: RunConfig) -> str | None:
    """Why the job ``run`` cannot be a pack's member (None: it can)."""
    trainer = run.trainer
    if run.mode != JobMode.train:
        return f"mode={run.mode.value}: only training jobs are packed"
    if trainer.get("gradient_clip_val") and trainer.get("gradient_clip_algorithm",
                                                         "norm") == "norm":
        return ("trainer.gradient_clip_val: clipping by the global gradient norm would "
                "couple the members of a pack (one norm over all of them); clip by value "
                "(trainer.gradient_clip_algorithm=value) or run without packing")
    if run.optimizer.name not in ELEMENTWISE_OPTIMIZERS:
        return (f"optimizer={run.optimizer.name}: a pack needs an optimizer that updates "
                f"each parameter on its own ({', '.join(ELEMENTWISE_OPTIMIZERS)})")
    if trainer.get("fast_dev_run"):
        return "trainer.fast_dev_run: smoke tests run alone (without hydra/sweeper=packed)"
    devices = trainer.get("devices", 1)
    if str(devices) not in ("1", "auto") or trainer.get("num_nodes", 1) != 1:
        return (f"trainer.devices={devices}: a pack trains in one process on one device; "
                f"pack on one device per job (hydra/launcher=parallel or slurm spread packs)")
    if run.speed.compile.value != "none":
        return "speed.compile: packs are not compiled yet; run them with speed.compile=none"
    return None
