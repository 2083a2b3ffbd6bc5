"""Multirun: one folder, one results.json and one W&B run per job; failures isolated."""

from __future__ import annotations

import pytest
from support import launch, read_wandb_runs, results_under

from downsample_study.layout import job_dir_name


@pytest.mark.slow
def test_two_by_two_multirun_gives_four_results_and_four_wandb_runs(quick, tmp_path):
    run = launch(["-m", *quick, "downsample=maxpool,stride2", "dataset=mnist,cifar10",
                  "hydra.sweep.dir=sweep"])
    assert run.exit_code == 0
    sweep = tmp_path / "sweep"
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != ".hydra")
    # folders are keyed by the job's overrides, not by job number
    assert len(jobs) == 4
    for dataset in ("cifar10", "mnist"):
        for op in ("maxpool", "stride2"):
            assert sum(f"dataset={dataset},downsample={op}," in job for job in jobs) == 1
    results = results_under(sweep)
    assert [r["status"] for r in results] == ["completed"] * 4

    runs = read_wandb_runs(sweep)
    assert len(runs) == 4 and len({r.run_id for r in runs}) == 4
    assert len({r.group for r in runs}) == 1 and runs[0].group  # one group per sweep
    by_name = {job_dir_name(r.name): r for r in runs}  # run name = the job's overrides
    assert set(by_name) == set(jobs)
    for job, result in zip(jobs, results):
        wandb_run = by_name[job]
        dataset = result["config"]["dataset"]["name"]
        assert wandb_run.config["dataset"]["name"] == dataset
        assert set(wandb_run.tags) >= {dataset, "lenet5"}
        logged = {k: v for row in wandb_run.history for k, v in row.items()}
        assert logged["params/total"] == result["params"]["total"]
        assert "val/acc_top1" in logged and "train/loss_epoch" in logged
        assert wandb_run.summary["test/acc_top1"] == pytest.approx(result["test"]["acc_top1"])
        assert wandb_run.exit_code == 0


def test_failing_job_is_recorded_and_the_others_finish(quick, tmp_path, capsys):
    # lr=1e6 diverges at once: that job must fail with a clear message, the other complete
    run = launch(["-m", *quick, "optimizer.lr=0.001,1e6", "optimizer=sgd",
                  "downsample.batch_norm=false", "logger=wandb", "hydra.sweep.dir=sweep"],
                 capsys)
    assert run.exit_code == 1
    by_lr = {r["config"]["optimizer"]["lr"]: r for r in results_under(tmp_path / "sweep")}
    assert by_lr[0.001]["status"] == "completed"
    assert by_lr[1e6]["status"] == "failed" and "diverged" in by_lr[1e6]["error"]
    assert "1 failed" in run.output
    exit_codes = sorted((r.config["optimizer"]["lr"], r.exit_code)
                        for r in read_wandb_runs(tmp_path / "sweep"))
    assert exit_codes == [(0.001, 0), (1e6, 1)]


def test_same_seed_same_metrics_on_cpu(quick, tmp_path):
    for out in ("a", "b"):
        assert launch([*quick, "seed=3", "logger=none", f"hydra.run.dir={out}"]).exit_code == 0
    a, b = (results_under(tmp_path / out)[0] for out in ("a", "b"))
    assert a["val"] == b["val"] and a["test"] == b["test"]
