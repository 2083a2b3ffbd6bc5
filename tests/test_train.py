"""End to end: the real command line, in process, on synthetic data in the real formats."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import launch, results_under
from support import read_wandb_runs


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_one_job_per_dataset_writes_completed_results(dataset, quick, tmp_path):
    run = launch([*quick, f"dataset={dataset}", "logger=csv", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed"
    assert results["config"]["dataset"]["name"] == dataset
    assert results["params"]["total"] > 0 and results["flops_forward"] > 0
    # the synthetic classes are easy: a working pipeline is far above chance (0.1)
    assert results["test"]["acc_top1"] > 0.5
    assert results["test"]["acc_top2"] >= results["test"]["acc_top1"]
    assert set(results["versions"]) >= {"torch", "lightning", "torchvision"}


@pytest.mark.parametrize(("extra", "status"), [([], 0), (["trainer.max_epoch=1"], 1)])
def test_the_command_line_exits_with_the_run_status_and_a_complete_wandb_run(
    extra, status, quick, tmp_path
):
    # the process skips the interpreter's teardown (__main__): W&B must still close its run
    run = subprocess.run(
        [sys.executable, "-m", "downsample_study", *quick, "logger.mode=offline",
         "evaluation.feature_maps=false", "hydra.run.dir=out", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == status, run.stderr[-3000:]
    if status == 0:
        [wandb_run] = read_wandb_runs(tmp_path / "out" / "wandb")
        assert wandb_run.exit_code == 0
        assert wandb_run.summary["test/acc_top1"] > 0.5
    else:
        assert "trainer.max_epoch" in run.stderr
