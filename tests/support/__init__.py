"""Test-support helpers: the command line run in process (runs), tiny synthetic datasets in
real on-disk formats (datasets), what the CPU kernels need (kernels), readers for offline W&B
run files (wandb_records) and the CSV and TensorBoard loggers' files (tracker_files).

Plain functions, no pytest magic, so they can be used from fixtures, scripts and notebooks.
"""

from support.datasets import CIFAR10_CLASSES, REAL_DATA, write_cifar10, write_idx_dataset
from support.kernels import needs_kernels
from support.runs import Launch, cli, launch, results_under, signal_at_step, summarize_sweep
from support.tracker_files import csv_rows, tensorboard_scalars
from support.wandb_records import (
    WandbRun,
    iter_wandb_records,
    read_finished_wandb_run,
    read_wandb_run,
    read_wandb_runs,
)

__all__ = [
    "CIFAR10_CLASSES",
    "REAL_DATA",
    "Launch",
    "WandbRun",
    "cli",
    "csv_rows",
    "iter_wandb_records",
    "launch",
    "needs_kernels",
    "read_finished_wandb_run",
    "read_wandb_run",
    "read_wandb_runs",
    "results_under",
    "signal_at_step",
    "summarize_sweep",
    "tensorboard_scalars",
    "write_cifar10",
    "write_idx_dataset",
]
