"""The report's account of every job: failed, missing, interrupted and duplicate jobs are
listed, not dropped, and never counted as seeds."""

from __future__ import annotations

import json

import pytest
from support.report_sweeps import TOP1, percent, write_job, write_report_sweep

from downsample_study.report.build import write_report


@pytest.fixture
def sweep(tmp_path):
    return write_report_sweep(tmp_path / "sweep")


def test_failed_and_missing_jobs_are_listed_not_dropped(sweep):
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    assert "16 jobs: 14 completed, 1 failed, 1 missing; 5 variants" in text
    section = text.split("## Jobs without results")[1]
    assert "dataset=mnist,downsample=stride2,seed=3` | failed | training loss is nan" in section
    assert "dataset=mnist,downsample=maxpool,seed=3` | missing | no results.json" in section
    assert "| 3 (+1 failed) |" in text


def test_an_interrupted_job_is_listed_as_resumable_not_failed(sweep):
    folder = write_job(sweep, "mnist", "stride2", 4, 0.98)
    results = json.loads((folder / "results.json").read_text())
    results.update(status="interrupted", error="stopped by SIGTERM at epoch 2, step 20")
    (folder / "results.json").write_text(json.dumps(results))
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    assert "17 jobs: 14 completed, 1 failed, 1 missing, 1 interrupted; 5 variants" in text
    assert (f"`{folder.name}` | interrupted | stopped by SIGTERM at epoch 2, step 20 (the "
            f"sweep's command resumes it)") in text
    [stride2] = [v for v in report.variants if v.label == "lenet5 · stride2"
                 and v.flat["dataset.name"] == "mnist"]
    assert len(stride2.failed) == 1  # the diverged seed 3 only


def test_a_seed_run_twice_is_counted_once_and_listed(sweep):
    again = write_job(sweep / "rerun", "mnist", "maxpool", 1, 0.5)
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    [variant] = [v for v in report.variants if v.label == "lenet5 · maxpool"
                 and v.flat["dataset.name"] == "mnist"]
    assert variant.seeds == [0, 1, 2]
    assert variant.stat("test", "acc_top1").mean == pytest.approx(
        percent(TOP1["mnist", "maxpool"].values()).mean())
    [duplicate] = [j for j in report.unfinished if j.status == "duplicate"]
    assert duplicate.name == again.relative_to(sweep).as_posix()
    assert "1 duplicate" in (sweep / "report.md").read_text()


def test_jobs_that_never_started_are_listed(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        folder = write_job(sweep, "mnist", "maxpool", seed, 0.98)
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(f"- downsample=maxpool\n- seed={seed}\n")
    (sweep / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n"
        "    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params: {seed: '0,1,2'}\n"
        "  overrides:\n"
        "    task: [downsample=maxpool]\n"
    )
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    assert [(j.status, j.name, j.error) for j in report.unfinished] == [
        ("missing", "downsample=maxpool,seed=2", "never started")]
