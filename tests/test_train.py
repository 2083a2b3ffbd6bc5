"""End to end: the real command line, in process, on synthetic data in the real formats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import launch, read_wandb_runs, results_under


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
    assert set(results["provenance"]["versions"]) >= {"torch", "lightning", "torchvision"}


def test_results_carry_their_schema_version_and_the_codes_commit(quick, tmp_path):
    import downsample_study
    from downsample_study.results import SCHEMA_VERSION

    assert launch([*quick, "logger=none", "evaluation.feature_maps.enabled=false",
                   "hydra.run.dir=out"]).exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["schema_version"] == SCHEMA_VERSION
    checkout = Path(downsample_study.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    provenance = results["provenance"]
    if (checkout / ".git").exists() and head.returncode == 0:  # run from a checkout
        assert provenance["git_commit"] == head.stdout.strip()
        assert isinstance(provenance["git_dirty"], bool)
    else:
        assert provenance["git_commit"] is None


@pytest.mark.parametrize(("version", "best", "stopped"), [(1, 2, 3), (3, 2, 3), (4, 1, 2)])
def test_earlier_results_are_read_with_epochs_counted_from_1(version, best, stopped, tmp_path):
    import json

    from downsample_study.results import read_results

    data = {"status": "interrupted", "config": {"seed": 0}, "best_epoch": 1,
            "stopped_at": {"epoch": 2, "step": 40}, "schema_version": version}
    if version == 1:
        del data["schema_version"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    results = read_results(tmp_path / "results.json")
    assert results.best_epoch == best
    assert results.stopped_at == {"epoch": stopped, "step": 40}


@pytest.mark.parametrize(("tracker", "trackers"), [
    ({"name": "wandb", "mode": "offline"}, [{"name": "wandb", "mode": "offline"}]),
    ({"name": "none"}, []),  # logger=none, as version 5 said it
    (None, []),
])
def test_version_5s_one_tracker_is_read_as_a_list_of_trackers(tracker, trackers, tmp_path):
    import json

    from downsample_study.results import read_results

    data = {"status": "completed", "config": {"seed": 0}, "tracker": tracker,
            "schema_version": 5}
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert read_results(tmp_path / "results.json").trackers == trackers


@pytest.mark.parametrize(("extra", "status"), [([], 0), (["trainer.max_epoch=1"], 1)])
def test_the_command_line_exits_with_the_run_status_and_a_complete_wandb_run(
    extra, status, quick, tmp_path, monkeypatch
):
    monkeypatch.delenv("WANDB_SILENT")  # what W&B prints on the console, as a user sees it
    # the process skips the interpreter's teardown (__main__): W&B must still close its run
    run = subprocess.run(
        [sys.executable, "-m", "downsample_study", *quick, "logger.wandb.mode=offline",
         "evaluation.feature_maps.enabled=false", "hydra.run.dir=out", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == status, run.stderr[-3000:]
    if status == 0:
        [wandb_run] = read_wandb_runs(tmp_path / "out" / "wandb")
        assert wandb_run.exit_code == 0
        assert wandb_run.summary["test/acc_top1"] > 0.5
        assert "results.json" in wandb_run.files
        assert "into the W&B run directory" not in run.stderr + run.stdout  # no link warning
    else:
        assert "trainer.max_epoch" in run.stderr
