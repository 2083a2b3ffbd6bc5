"""Shared fixtures: synthetic datasets in the real on-disk formats, a hermetic environment,
and an in-process launcher for the real command line (no 5 s interpreter start per run)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from support import write_cifar10, write_idx_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """MNIST gzipped (like ../shared/data), FashionMNIST uncompressed, CIFAR-10 batches."""
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "MNIST", n_train=700, n_test=200, gz=True)
    write_idx_dataset(root, "FashionMNIST", n_train=700, n_test=200, gz=False)
    write_cifar10(root, n_train=700, n_test=200)
    return root


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path) -> Path:
    """No W&B credentials, no DATA_DIR, a private HOME and working directory per test."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def quick(data_dir, tmp_path) -> list[str]:
    """Overrides for a job of a few seconds on the synthetic data."""
    return [
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.val_size=100",
        "dataset.eval_batch_size=128",
        "dataset.verify_checksums=false",
        "trainer.max_epochs=1",
        "accelerator=cpu",
    ]


@dataclass
class Launch:
    exit_code: int
    output: str


def launch(args: list[str], capsys=None) -> Launch:
    """Run ``python -m downsample_study ARGS`` in this process; return its exit code."""
    from downsample_study.__main__ import main

    GlobalHydra.instance().clear()
    argv, sys.argv = sys.argv, ["downsample_study", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    output = ""
    if capsys is not None:
        captured = capsys.readouterr()
        output = captured.out + captured.err
    return Launch(code, output)


def results_under(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]
