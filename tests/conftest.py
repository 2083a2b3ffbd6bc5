"""Shared fixtures: synthetic datasets in the real on-disk formats, a hermetic environment and
the overrides of a quick job. (Helpers tests import are in the support package.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from support import write_cifar10, write_idx_dataset

from downsample_study.config.store import trainer_arguments


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``) each worker gets its share of the
    cores, for its own torch and for the processes it starts: two torch processes at the default
    thread count on the same cores slow each other down many times over."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        from downsample_study.runtime.slots import available_cores

        share = str(max(1, available_cores() // workers))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = share
        torch.set_num_threads(int(share))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """MNIST gzipped (as the real copies often are), FashionMNIST uncompressed, CIFAR-10 batches."""
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root, "MNIST", n_train=700, n_test=200, gz=True)
    write_idx_dataset(root, "FashionMNIST", n_train=700, n_test=200, gz=False)
    write_cifar10(root, n_train=700, n_test=200)
    return root


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path) -> Path:
    """Torch's random numbers seeded; no W&B credentials, no DATA_DIR, a private HOME (and
    cache folder) and working directory per test. The cache holds Lightning's Trainer
    arguments, as after a first start: a command line that only composes a config then loads
    no torch (test_config.py checks the first start)."""
    torch.manual_seed(0)  # a test's random inputs are the same in every run: none is flaky
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    trainer_arguments()
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def torch_threads():
    """``torch.set_num_threads``, the count from before coming back after the test."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


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
