"""The command line run in process or in a process of its own, and what its jobs left."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Launch:
    exit_code: int
    output: str


def launch(args: list[str], capsys=None) -> Launch:
    """Run ``python -m downsample_study ARGS`` in this process; return its exit status (and,
    given pytest's ``capsys``, what it printed)."""
    from hydra.core.global_hydra import GlobalHydra

    from downsample_study.cli import run

    GlobalHydra.instance().clear()
    try:
        code = run(list(args))
    finally:
        GlobalHydra.instance().clear()
    output = ""
    if capsys is not None:
        captured = capsys.readouterr()
        output = captured.out + captured.err
    return Launch(code, output)


def cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m downsample_study ARGS`` in a process of its own (a launcher that forks
    workers, say), in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "downsample_study", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def signal_at_step(monkeypatch, step: int, signum: int, module_class=None) -> None:
    """Send ``signum`` to this process during training step ``step`` (0-based) of a
    ``module_class`` (the solo ``DownsampleClassifier`` by default)."""

    if module_class is None:
        from downsample_study.training.module import DownsampleClassifier as module_class
    original = module_class.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == step:
            os.kill(os.getpid(), signum)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(module_class, "training_step", training_step)


def results_under(folder: Path) -> list[dict]:
    """Every job's ``results.json`` below ``folder``, decoded, in path order (not the copies
    W&B keeps with its runs)."""
    from downsample_study.layout import RESULTS_FILE
    from downsample_study.sweeps.folder import job_folders

    return [json.loads((job / RESULTS_FILE).read_text()) for job in job_folders(Path(folder))
            if (job / RESULTS_FILE).is_file()]


def summarize_sweep(sweep_dir: Path, caplog) -> tuple[int, str]:
    """The sweep summary's exit status and the lines it logged (Hydra's logging config holds
    the package's logger, so the capture is attached to it for the call)."""
    from downsample_study.sweeps.summary import summarize

    sweep_log = logging.getLogger("downsample_study")
    sweep_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="downsample_study"):
            status = summarize(Path(sweep_dir))
    finally:
        sweep_log.removeHandler(caplog.handler)
    return status, caplog.text
