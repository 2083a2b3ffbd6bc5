"""What the bench measures besides the loops: the machine's fp32 peak, the training FLOPs
of one image, the start-up of the command line and the wall time of a small sweep."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.loops import WARMUP_STEPS, Timer, compose, model_and_optimizer


def train_images(args) -> int:
    """Images in the framework's training split (the training set less ``val_size``)."""
    from downsample_study.config.validate import validate
    from downsample_study.data.datasets import load_splits

    cfg = validate(compose(args, args.batch_sizes[0])).dataset
    train, _ = load_splits(cfg, Path(args.data_dir), Path(args.cache_dir))
    return len(train) - cfg.val_size


def peak_gflops(device: str, size: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul rate: the 'peak' the loops are compared with."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    a @ b  # warm-up
    timer = Timer(torch.device(device))
    timer.step(WARMUP_STEPS - 1, -1)
    for _ in range(repeats):
        a @ b
    timer.step(0, 0)
    return 2 * size**3 * repeats / timer.seconds / 1e9


def train_flops_per_image(args) -> float:
    """Forward + backward FLOPs of one training image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    from downsample_study.data.datasets import DATASETS

    net, _, _ = model_and_optimizer(args, 8, tuned=False)
    x = torch.randn(8, *DATASETS[args.dataset].input_shape, device=args.device)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(x), torch.zeros(8, dtype=torch.long, device=args.device)).backward()
    return counter.get_total_flops() / 8


def startup_seconds(args) -> float:
    """Wall time from launching ``python -m downsample_study`` to its first training step."""
    probe = (
        "import sys, time\n"
        "from downsample_study.training.module import DownsampleClassifier\n"
        "def first(self, *a):\n"
        "    print(f'FIRST_STEP {time.time()}', flush=True)\n"
        "    raise SystemExit(0)\n"
        "DownsampleClassifier.on_train_batch_start = first\n"
        "from downsample_study.cli import main\n"
        "sys.argv = ['downsample_study', *sys.argv[1:]]\n"
        "main()\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-c", probe, f"dataset={args.dataset}",
            f"paths.data_dir={args.data_dir}", f"hydra.run.dir={tmp}", "logger.wandb.mode=offline",
            f"accelerator={'gpu' if args.device == 'cuda' else 'cpu'}", *args.set,
        ]
        start = time.time()
        out = _run(command, tmp, "the probe run")
    for line in out.stdout.splitlines():
        if line.startswith("FIRST_STEP "):
            return float(line.split()[1]) - start
    raise RuntimeError(
        f"the probe run never reached a training step:\n{(out.stdout + out.stderr)[-3000:]}"
    )


SUBPROCESS_SECONDS = 600


def _run(command: list[str], folder: str, what: str) -> subprocess.CompletedProcess:
    """``command``'s output, or a ``RuntimeError`` once it has run ``SUBPROCESS_SECONDS``."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=folder,
                              timeout=SUBPROCESS_SECONDS)
    except subprocess.TimeoutExpired as timeout:
        output = (timeout.stdout or b"").decode(errors="replace")  # bytes, even with text=True
        raise RuntimeError(f"{what} ran over {SUBPROCESS_SECONDS} s:\n{output[-3000:]}") from None


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
        out = _run(command, tmp, "the sweep")
        seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"the sweep failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return seconds
