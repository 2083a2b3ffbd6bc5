"""End to end: the real command line, in process, on synthetic data in the real formats."""

from __future__ import annotations

import pytest
from conftest import launch, results_under


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
