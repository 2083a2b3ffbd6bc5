"""``python -m downsample_study.bench``: the framework's training throughput against its floors.

Four loops train the same model (LeNet-5 + max pool by default) on the same data, batch size
and number of steps, interleaved round by round so that machine noise hits them alike:

- ``dataloader_loop``: the seeds' plain loop, a torchvision dataset with ``ToTensor`` and a
  ``DataLoader`` (per-sample PIL conversion), ``torch.optim.Adam`` with its defaults;
- ``tensor_loop``: the hand-written floor, a loop over one preloaded, normalised tensor sliced
  by ``randperm``, with the same plain model and optimizer;
- ``tensor_loop_tuned``: that loop with the framework's own settings (its optimizer, e.g. fused
  Adam, and memory format, channels-last on CPU): what is left between it and the framework
  is the framework's per-step cost (Lightning's loop, logging, callbacks);
- ``framework``: ``lightning.Trainer.fit`` on the framework's own DataModule and
  LightningModule, built from the app's Hydra config exactly as ``python -m downsample_study``
  builds them (default logger included).

It prints images/s (median of the rounds), the ratios, the share of the machine's measured
fp32 peak, and the start-up time of ``python -m downsample_study`` to its first training step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from downsample_study.speed import skip_unloadable_nvml_probe

LOOPS = ("dataloader_loop", "tensor_loop", "tensor_loop_tuned", "framework")
WARMUP_STEPS = 10


def _compose(args: argparse.Namespace, batch_size: int):
    from hydra import compose, initialize_config_dir

    from downsample_study.config import register_configs
    from downsample_study.sweep import CONFIG_DIR, register_resolvers

    register_configs()
    register_resolvers()
    overrides = [
        f"dataset={args.dataset}",
        f"model={args.model}",
        f"downsample={args.downsample}",
        f"dataset.batch_size={batch_size}",
        f"paths.data_dir={args.data_dir}",
        f"accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"trainer.limit_train_batches={args.steps + WARMUP_STEPS}",
        "trainer.limit_val_batches=0",
        "trainer.max_epochs=1",
        "logger.mode=offline",
        *args.set,
    ]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


class _Timer:
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


def _framework(args, batch_size: int) -> float:
    import lightning as L

    from downsample_study.config import validate
    from downsample_study.data import DATASETS, DownsampleDataModule
    from downsample_study.loggers import RunIdentity, create_logger, finish_wandb
    from downsample_study.models import build_model
    from downsample_study.module import DownsampleClassifier
    from downsample_study.shapes import ModelSummary
    from downsample_study.train import build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = validate(_compose(args, batch_size))
        info = DATASETS[run_cfg.dataset.name]
        L.seed_everything(0, verbose=False)
        net = build_model(run_cfg.model, run_cfg.downsample, info.input_shape, info.num_classes)
        module = DownsampleClassifier(
            net, run_cfg.optimizer, info.num_classes, ModelSummary.of(net, info.input_shape),
            run_cfg.speed,
        )
        datamodule = DownsampleDataModule(
            run_cfg.dataset, Path(run_cfg.paths.data_dir), Path(run_cfg.paths.cache_dir), 0
        )
        logger = create_logger(run_cfg.logger, RunIdentity("bench", ["bench"]), Path(tmp))
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=Path(tmp) / "ckpt")
        trainer = build_trainer(run_cfg, Path(tmp), logger, checkpoint)
        timer = _Timer(torch.device(args.device))
        last = args.steps + WARMUP_STEPS - 1

        class Timing(L.Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                timer.step(batch_idx, last)

        trainer.callbacks.append(Timing())
        trainer.fit(module, datamodule=datamodule)
        finish_wandb(exit_code=0)
    return args.steps * batch_size / timer.seconds


def _model_and_optimizer(args, batch_size: int, tuned: bool):
    """The model and optimizer of a hand-written loop, and whether batches go channels-last:
    plain (``torch.optim.Adam()``, NCHW) or with the framework's settings."""
    from downsample_study.config import validate
    from downsample_study.data import DATASETS
    from downsample_study.downsample import DOWNSAMPLE_SCHEMAS
    from downsample_study.models import MODEL_SCHEMAS, build_model
    from downsample_study.module import create_optimizer
    from downsample_study.speed import use_channels_last

    info = DATASETS[args.dataset]
    torch.manual_seed(0)
    net = build_model(
        MODEL_SCHEMAS[args.model](name=args.model),
        DOWNSAMPLE_SCHEMAS[args.downsample](name=args.downsample),
        info.input_shape,
        info.num_classes,
    ).to(args.device)
    if not tuned:
        return net, torch.optim.Adam(net.parameters()), False
    run_cfg = validate(_compose(args, batch_size))
    channels_last = use_channels_last(run_cfg.speed.channels_last, torch.device(args.device))
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net, create_optimizer(run_cfg.optimizer, net.parameters()), channels_last


def _train_steps(net, optimizer, batches, timer: _Timer, steps: int, channels_last: bool) -> None:
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


def _dataloader_loop(args, batch_size: int) -> float:
    from torchvision import datasets, transforms

    from downsample_study.data import DATASETS, idx_root

    info = DATASETS[args.dataset]
    root = idx_root(info, Path(args.data_dir), Path(args.cache_dir))
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[args.dataset]
    dataset = cls(str(root), train=True, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    net, optimizer, channels_last = _model_and_optimizer(args, batch_size, tuned=False)
    timer = _Timer(torch.device(args.device))

    def batches():
        for x, y in loader:
            yield x.to(args.device), y.to(args.device)

    _train_steps(net, optimizer, batches(), timer, args.steps, channels_last)
    return args.steps * batch_size / timer.seconds


def _tensor_loop(args, batch_size: int, tuned: bool = False) -> float:
    from downsample_study.config import DatasetConfig
    from downsample_study.data import DATASETS, load_splits

    info = DATASETS[args.dataset]
    train, _ = load_splits(
        args.dataset, DatasetConfig(name=args.dataset), Path(args.data_dir), Path(args.cache_dir)
    )
    mean, std = torch.tensor(info.mean).view(1, -1, 1, 1), torch.tensor(info.std).view(1, -1, 1, 1)
    images = ((train.images.float() / 255 - mean) / std).to(args.device)
    labels = train.labels.to(args.device)
    net, optimizer, channels_last = _model_and_optimizer(args, batch_size, tuned)
    timer = _Timer(torch.device(args.device))

    def batches():
        order = torch.randperm(len(labels), device=args.device)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield images[index], labels[index]

    _train_steps(net, optimizer, batches(), timer, args.steps, channels_last)
    return args.steps * batch_size / timer.seconds


def train_images(args) -> int:
    """Images in the framework's training split (the training set less ``val_size``)."""
    from downsample_study.config import validate
    from downsample_study.data import load_splits

    cfg = validate(_compose(args, args.batch_sizes[0])).dataset
    train, _ = load_splits(args.dataset, cfg, Path(args.data_dir), Path(args.cache_dir))
    return len(train) - cfg.val_size


def peak_gflops(device: str, size: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul rate: the 'peak' the loops are compared with."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    a @ b  # warm-up
    timer = _Timer(torch.device(device))
    timer.step(WARMUP_STEPS - 1, -1)
    for _ in range(repeats):
        a @ b
    timer.step(0, 0)
    return 2 * size**3 * repeats / timer.seconds / 1e9


def train_flops_per_image(args) -> float:
    """Forward + backward FLOPs of one training image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    from downsample_study.data import DATASETS

    net, _, _ = _model_and_optimizer(args, 8, tuned=False)
    x = torch.randn(8, *DATASETS[args.dataset].input_shape, device=args.device)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(x), torch.zeros(8, dtype=torch.long, device=args.device)).backward()
    return counter.get_total_flops() / 8


def startup_seconds(args) -> float:
    """Wall time from launching ``python -m downsample_study`` to its first training step."""
    probe = (
        "import sys, time\n"
        "from downsample_study.module import DownsampleClassifier\n"
        "def first(self, *a):\n"
        "    print(f'FIRST_STEP {time.time()}', flush=True)\n"
        "    raise SystemExit(0)\n"
        "DownsampleClassifier.on_train_batch_start = first\n"
        "from downsample_study.__main__ import main\n"
        "sys.argv = ['downsample_study', *sys.argv[1:]]\n"
        "main()\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-c", probe, f"dataset={args.dataset}",
            f"paths.data_dir={args.data_dir}", f"hydra.run.dir={tmp}", "logger.mode=offline",
            f"accelerator={'gpu' if args.device == 'cuda' else 'cpu'}", *args.set,
        ]
        start = time.time()
        out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp)
    for line in out.stdout.splitlines():
        if line.startswith("FIRST_STEP "):
            return float(line.split()[1]) - start
    raise RuntimeError(
        f"the probe run never reached a training step:\n{(out.stdout + out.stderr)[-3000:]}"
    )


SWEEP_OPERATORS = "maxpool,avgpool,stride2,stride2_fold"


def sweep_seconds(args, parallel: bool) -> float:
    """Wall time of a 4-job, 1-epoch sweep over the seeds' operators, from the command line
    to its exit: one job at a time, or with ``hydra/launcher=parallel``."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "downsample_study", "-m", f"downsample={SWEEP_OPERATORS}",
            f"dataset={args.dataset}", f"paths.data_dir={args.data_dir}",
            f"paths.cache_dir={args.cache_dir}", "trainer.max_epochs=1", "logger=none",
            f"hydra.sweep.dir={tmp}/sweep", *(["hydra/launcher=parallel"] if parallel else []),
            *args.set,
        ]
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp)
        seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"the sweep failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return seconds


RUNNERS: dict[str, Callable] = {
    "dataloader_loop": _dataloader_loop,
    "tensor_loop": _tensor_loop,
    "tensor_loop_tuned": lambda args, batch_size: _tensor_loop(args, batch_size, tuned=True),
    "framework": _framework,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m downsample_study.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--dataset", default="fashion_mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--downsample", default="maxpool")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per loop and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--sweep", action="store_true",
                        help=f"also time a 4-job sweep (downsample={SWEEP_OPERATORS}, 1 epoch) "
                             "run sequentially and with hydra/launcher=parallel")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for the framework loop, e.g. "
                             "speed.channels_last=true trainer.precision=bf16-mixed")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "./data"))
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/downsample_study").expanduser()))
    args = parser.parse_args(argv)
    args.data_dir = str(Path(args.data_dir).resolve())
    os.environ.setdefault("WANDB_SILENT", "true")
    skip_unloadable_nvml_probe()  # as every job does: the hand-written loops pay what it pays

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print(f"model {args.model} + {args.downsample}, {args.dataset}, {args.steps} timed steps "
          f"after {WARMUP_STEPS} warm-up, median of {args.rounds} interleaved rounds")
    peak = peak_gflops(args.device)
    flops = train_flops_per_image(args)
    print(f"fp32 matmul peak {peak:.0f} GFLOP/s; training costs {flops / 1e6:.2f} MFLOP/image\n")

    medians: dict[tuple[str, int], float] = {}
    n_train = train_images(args)
    for batch_size in args.batch_sizes:
        samples: dict[str, list[float]] = {loop: [] for loop in LOOPS}
        # every loop trains within one epoch of the training split (the framework's epoch
        # ends there), so large batches get fewer steps
        steps = min(args.steps, n_train // batch_size - WARMUP_STEPS)
        if steps < 1:
            parser.error(f"--batch-sizes: {batch_size} leaves no timed step in one epoch")
        loop_args = argparse.Namespace(**{**vars(args), "steps": steps})
        for _ in range(args.rounds):
            for loop in LOOPS:
                samples[loop].append(RUNNERS[loop](loop_args, batch_size))
        for loop in LOOPS:
            medians[loop, batch_size] = statistics.median(samples[loop])
        print(f"batch {batch_size} ({steps} timed steps):")
        print(f"  {'loop':<18} {'img/s':>9} {'vs dataloader':>14} {'% of peak':>10}   rounds")
        for loop in LOOPS:
            rate = medians[loop, batch_size]
            ratio = rate / medians["dataloader_loop", batch_size]
            rounds = ", ".join(f"{r:,.0f}" for r in samples[loop])
            print(f"  {loop:<18} {rate:>9,.0f} {ratio:>14.2f} "
                  f"{100 * rate * flops / (peak * 1e9):>9.1f}%   {rounds}")
        print()

    if args.startup_runs:
        times = [startup_seconds(args) for _ in range(args.startup_runs)]
        print(f"start-up to first training step: {statistics.median(times):.2f} s "
              f"(median of {', '.join(f'{t:.2f}' for t in times)})\n")

    if args.sweep:
        sequential, parallel = sweep_seconds(args, False), sweep_seconds(args, True)
        print(f"4-job sweep, 1 epoch: sequential {sequential:.1f} s, parallel preset "
              f"{parallel:.1f} s\n")
        print(f"sweep parallel/sequential = {parallel / sequential:.2f}")

    for batch_size in args.batch_sizes:
        if batch_size != args.batch_sizes[0]:
            ratio = medians["framework", batch_size] / medians["tensor_loop", batch_size]
            print(f"framework/tensor_loop@{batch_size} = {ratio:.2f}")
    first = args.batch_sizes[0]
    print(f"framework/tensor_loop_tuned = "
          f"{medians['framework', first] / medians['tensor_loop_tuned', first]:.2f}"
          "  (the framework's own per-step cost)")
    print(f"framework/tensor_loop = "
          f"{medians['framework', first] / medians['tensor_loop', first]:.2f}")
    print(f"framework/dataloader_loop = "
          f"{medians['framework', first] / medians['dataloader_loop', first]:.2f}")


if __name__ == "__main__":
    main()
