"""The training loops the bench compares, each training the same model on the same data,
batch size and number of steps:

- ``dataloader_loop``: the seeds' plain loop, the dataset's per-sample torchvision form with
  ``ToTensor`` and a ``DataLoader`` (per-sample PIL conversion), ``torch.optim.Adam`` with its
  defaults;
- ``tensor_loop``: the hand-written floor, a loop over one preloaded, normalised tensor sliced
  by ``randperm``, with the same plain model and optimizer;
- ``tensor_loop_tuned``: that loop with the framework's own settings (its optimizer, e.g. fused
  Adam, and memory format, channels-last on CPU): what is left between it and the framework
  is the framework's per-step cost (Lightning's loop, logging, callbacks);
- ``framework``: the job as ``python -m downsample_study`` builds it (``build_job``: the
  DataModule, LightningModule, Trainer and default logger of the app's Hydra config);
- ``packed``: K seeds of that job as one job of K members (a pack), against ``framework``
  run K times one after another.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

LOOPS = ("dataloader_loop", "tensor_loop", "tensor_loop_tuned", "framework")
WARMUP_STEPS = 10


def compose(args: argparse.Namespace, batch_size: int, logger: str = "logger.wandb.mode=offline"):
    """The app's config for the bench's job (Hydra's Compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from downsample_study.config.hydra_versions import VERSION_BASE
    from downsample_study.config.store import CONFIG_DIR, register_configs

    register_configs()
    overrides = [
        f"dataset={args.dataset}",
        f"model={args.model}",
        f"downsample={args.downsample}",
        f"dataset.batch_size={batch_size}",
        f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={args.cache_dir}",
        f"accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"trainer.limit_train_batches={args.steps + WARMUP_STEPS}",
        "trainer.limit_val_batches=1",  # after the timed steps; the job selects on it
        "trainer.max_epochs=1",
        logger,
        *args.set,
    ]
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        return hydra_compose("config", overrides=overrides)


class Timer:
    """Seconds between the end of the warm-up steps and the end of the last step."""

    def __init__(self, device: torch.device):
        self.device, self.start, self.stop = device, 0.0, 0.0

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(self, index: int, last: int) -> None:
        if index == WARMUP_STEPS - 1:
            self.start = self._sync()
        elif index == last:
            self.stop = self._sync()

    @property
    def seconds(self) -> float:
        return self.stop - self.start


def timed(trainer, device: str, steps: int) -> Timer:
    """A ``Timer`` of ``trainer``'s ``steps`` training steps after the warm-up."""
    import lightning as L

    timer, last = Timer(torch.device(device)), steps + WARMUP_STEPS - 1

    class Timing(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            timer.step(batch_idx, last)

    trainer.callbacks.append(Timing())
    return timer


def framework(args, batch_size: int) -> float:
    from downsample_study.job.build import build_job, member
    from downsample_study.training.tracking import RunIdentity

    with tempfile.TemporaryDirectory() as tmp:
        job = build_job([member(compose(args, batch_size), Path(tmp),
                                RunIdentity("bench", ["bench"]))], Path(tmp))
        timer = timed(job.trainer, args.device, args.steps)
        job.start_tracking()  # its logger, as every job has
        job.fit()
        job.members[0].finish(exit_code=0)
    return args.steps * batch_size / timer.seconds


def packed(args, batch_size: int, members: int) -> tuple[float, int | None]:
    """Images/s of all the members of a job of ``members`` seeds (a pack) together, and on a
    GPU the peak of its memory (bytes allocated)."""
    from omegaconf import OmegaConf

    from downsample_study.job.build import build_job, member

    with tempfile.TemporaryDirectory() as tmp:
        steps = argparse.Namespace(**{**vars(args), "steps": args.pack_steps})
        cfg = compose(steps, batch_size, logger="logger=none")
        seeds = []
        for seed in range(members):
            seeds.append(member(OmegaConf.merge(cfg, {"seed": seed}), Path(tmp) / f"seed{seed}"))
        job = build_job(seeds, Path(tmp), pack_id="bench")
        timer = timed(job.trainer, args.device, args.pack_steps)
        on_gpu = args.device == "cuda"
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        with contextlib.redirect_stdout(io.StringIO()):  # its layer table and epoch line
            job.fit()
        memory = torch.cuda.max_memory_allocated() if on_gpu else None
    return members * args.pack_steps * batch_size / timer.seconds, memory


def model_and_optimizer(args, batch_size: int, tuned: bool):
    """The model and optimizer of a hand-written loop, and whether batches go channels-last:
    plain (``torch.optim.Adam()``, NCHW) or with the framework's settings."""
    from downsample_study.config.validate import validate
    from downsample_study.data.datasets import DATASETS
    from downsample_study.nets.models import build_model, model_config
    from downsample_study.nets.operators import downsample_config
    from downsample_study.training.optimizers import create_optimizer
    from downsample_study.training.speed import use_channels_last

    info = DATASETS[args.dataset]
    torch.manual_seed(0)
    net = build_model(model_config(args.model), downsample_config(args.downsample),
                      info.input_shape, info.num_classes).to(args.device)
    if not tuned:
        return net, torch.optim.Adam(net.parameters()), False
    run_cfg = validate(compose(args, batch_size))
    channels_last = use_channels_last(run_cfg.speed.channels_last, torch.device(args.device))
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net, create_optimizer(run_cfg.optimizer, net.parameters()), channels_last


def _train_steps(net, optimizer, batches, timer: Timer, steps: int, channels_last: bool) -> None:
    last = steps + WARMUP_STEPS - 1
    for index, (x, y) in enumerate(batches):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.step(index, last)
        if index == last:
            return
    raise ValueError("not enough data for the requested number of steps")


def dataloader_loop(args, batch_size: int) -> float:
    from torchvision import transforms

    from downsample_study.config.validate import validate
    from downsample_study.data.datasets import DATASETS

    dataset = DATASETS[args.dataset].per_sample(
        validate(compose(args, batch_size)).dataset, Path(args.data_dir), Path(args.cache_dir),
        True, transforms.ToTensor(),
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    net, optimizer, channels_last = model_and_optimizer(args, batch_size, tuned=False)
    timer = Timer(torch.device(args.device))

    def batches():
        for x, y in loader:
            yield x.to(args.device), y.to(args.device)

    _train_steps(net, optimizer, batches(), timer, args.steps, channels_last)
    return args.steps * batch_size / timer.seconds


def tensor_loop(args, batch_size: int, tuned: bool = False) -> float:
    from downsample_study.config.validate import validate
    from downsample_study.data.datasets import DATASETS, load_splits

    info = DATASETS[args.dataset]
    train, _ = load_splits(validate(compose(args, batch_size)).dataset, Path(args.data_dir),
                           Path(args.cache_dir))
    mean, std = torch.tensor(info.mean).view(1, -1, 1, 1), torch.tensor(info.std).view(1, -1, 1, 1)
    images = ((train.images.float() / 255 - mean) / std).to(args.device)
    labels = train.labels.to(args.device)
    net, optimizer, channels_last = model_and_optimizer(args, batch_size, tuned)
    timer = Timer(torch.device(args.device))

    def batches():
        order = torch.randperm(len(labels), device=args.device)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield images[index], labels[index]

    _train_steps(net, optimizer, batches(), timer, args.steps, channels_last)
    return args.steps * batch_size / timer.seconds


RUNNERS: dict[str, Callable] = {
    "dataloader_loop": dataloader_loop,
    "tensor_loop": tensor_loop,
    "tensor_loop_tuned": lambda args, batch_size: tensor_loop(args, batch_size, tuned=True),
    "framework": framework,
}
