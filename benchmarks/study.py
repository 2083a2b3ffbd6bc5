"""``--study``: a whole study, the framework's packed sweep against a hand-written script.

Both train the same seeds, epochs, batch size and data, each in a process of its own timed from
launch to exit (start-up included), interleaved round by round in alternating order so that the
machine's drift hits them alike. The script trains one seed after another with the machine's
threads; the sweep runs its packs side by side (``hydra/launcher=parallel``), each on its share
of the cores: measured the faster split (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loops import compose

PLAIN_SCRIPT = Path(__file__).with_name("plain_study.py")
# the plain script's line per seed: "seed 3: val top-1 0.8712, test top-1 0.8650 (12.3 s)"
PLAIN_SEED = re.compile(r"^seed (\d+): .*test top-1 ([0-9.]+)", re.MULTILINE)
OUTPUT_FILE = "output.txt"  # each side's stdout and stderr, in its folder


@dataclass
class Side:
    """One run of one side: its wall time and each seed's test top-1, in seed order."""

    seconds: float
    accuracies: list[float]


def _settings(args) -> tuple[int, float]:
    """The framework's ``dataset.val_size`` and Adam learning rate under ``--set``, which the
    plain script is given so that both hold out and step alike."""
    from downsample_study.config.validate import validate

    cfg = validate(compose(args, args.study_batch))
    return cfg.dataset.val_size, cfg.optimizer.lr


def plain_command(args) -> list[str]:
    val_size, lr = _settings(args)
    return [sys.executable, str(PLAIN_SCRIPT), "--data-dir", args.data_dir,
            "--seeds", str(args.study_seeds), "--epochs", str(args.study_epochs),
            "--batch-size", str(args.study_batch), "--val-size", str(val_size), "--lr", str(lr),
            "--model", args.model, "--downsample", args.downsample, "--device", args.device]


def framework_command(args, folder: Path) -> list[str]:
    return [sys.executable, "-m", "downsample_study", "-m", "hydra/sweeper=packed",
            "hydra/launcher=parallel",
            f"seed=range({args.study_seeds})", f"dataset={args.dataset}", f"model={args.model}",
            f"downsample={args.downsample}", f"trainer.max_epochs={args.study_epochs}",
            f"dataset.batch_size={args.study_batch}", "logger=none", "evaluation=none",
            f"paths.data_dir={args.data_dir}", f"paths.cache_dir={args.cache_dir}",
            f"accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
            f"hydra.sweep.dir={folder / 'sweep'}", *args.set]


def _timed(command: list[str], folder: Path, what: str) -> float:
    """Seconds from launching ``command`` in ``folder`` to its exit; its output goes to
    ``folder/output.txt``. A ``RuntimeError`` with the output's end if it fails."""
    # the bench's own process set it (Lightning, and the NVML fix): each side sets its own
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / OUTPUT_FILE, "w") as output:
        start = time.perf_counter()
        code = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, cwd=folder,
                              env=env, check=False).returncode
        seconds = time.perf_counter() - start
    if code != 0:
        tail = (folder / OUTPUT_FILE).read_text()[-3000:]
        raise RuntimeError(f"{what} exited with {code}:\n{tail}")
    return seconds


def _checked(accuracies: dict[int, float], args, what: str, folder: Path) -> list[float]:
    if sorted(accuracies) != list(range(args.study_seeds)):
        raise RuntimeError(f"{what} reported test accuracies of seeds {sorted(accuracies)}, "
                           f"expected 0 to {args.study_seeds - 1} (its output: {folder})")
    return [accuracies[seed] for seed in sorted(accuracies)]


def plain_script(args, folder: Path) -> Side:
    seconds = _timed(plain_command(args), folder, "the plain script")
    printed = PLAIN_SEED.findall((folder / OUTPUT_FILE).read_text())
    accuracies = {int(seed): float(accuracy) for seed, accuracy in printed}
    return Side(seconds, _checked(accuracies, args, "the plain script", folder))


def framework_sweep(args, folder: Path) -> Side:
    from downsample_study.sweeps.folder import job_folders, read_job

    seconds = _timed(framework_command(args, folder), folder, "the framework's sweep")
    jobs = [read_job(job) for job in job_folders(folder / "sweep")]
    accuracies = {job.seed: job.results.test.acc_top1 for job in jobs
                  if job.results is not None and job.results.completed}
    return Side(seconds, _checked(accuracies, args, "the framework's sweep", folder))


SIDES = {"plain_script": plain_script, "framework": framework_sweep}


def run_study(args, folder: Path) -> dict[str, tuple[float, float]]:
    """Time both sides for ``args.rounds`` rounds, each run in ``folder/round<r>/<side>``,
    and print them; each side's median seconds and mean test top-1."""
    print(f"study: {args.study_seeds} seeds of {args.model} + {args.downsample} on "
          f"{args.dataset}, {args.study_epochs} epochs, batch {args.study_batch}; each side a "
          f"process from launch to exit, median of {args.rounds} interleaved rounds")
    runs: dict[str, list[Side]] = {name: [] for name in SIDES}
    for round_ in range(args.rounds):
        for name in list(SIDES)[:: 1 if round_ % 2 == 0 else -1]:
            runs[name].append(SIDES[name](args, folder / f"round{round_ + 1}" / name))
    print(f"  {'side':<14} {'seconds':>8}   test top-1 (mean ± sd over seeds)   rounds")
    measured = {}
    for name, sides in runs.items():
        seconds = statistics.median(side.seconds for side in sides)
        accuracies = [accuracy for side in sides for accuracy in side.accuracies]
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        rounds = ", ".join(f"{side.seconds:.1f} s ({statistics.mean(side.accuracies):.4f})"
                           for side in sides)
        print(f"  {name:<14} {seconds:>8.1f}   {statistics.mean(accuracies):.4f} ± "
              f"{spread:.4f}{'':<18}   {rounds}")
        measured[name] = seconds, statistics.mean(accuracies)
    print()
    return measured
