"""The report's account of every job: failed, missing, interrupted and duplicate jobs are
listed, not dropped, and never counted as seeds; a file it cannot read is one line naming it
(an error for a study's outcome, which sets what the seeds trained at; a warning for the
files beside a job's results, which the report can do without)."""

from __future__ import annotations

import json
import logging

import pytest
from support.report_sweeps import TOP1, percent, write_job, write_report_sweep

from downsample_study.report.build import write_report
from downsample_study.report.cli import main


@pytest.fixture
def sweep(tmp_path):
    return write_report_sweep(tmp_path / "sweep")


def test_failed_and_missing_jobs_are_listed_not_dropped(sweep):
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    assert "16 jobs: 14 completed, 1 failed, 1 not run; 5 variants" in text
    section = text.split("## Jobs without results")[1]
    assert "dataset=mnist,downsample=stride2,seed=3` | failed | training loss is nan" in section
    assert ("dataset=mnist,downsample=maxpool,seed=3` | not run | killed before its first "
            "epoch, or not started") in section
    assert "| 3 (+1 failed) |" in text


def test_an_interrupted_job_is_listed_as_resumable_not_failed(sweep):
    folder = write_job(sweep, "mnist", "stride2", 4, 0.98)
    results = json.loads((folder / "results.json").read_text())
    results.update(status="interrupted", error="stopped by SIGTERM at epoch 2, step 20")
    (folder / "results.json").write_text(json.dumps(results))
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    assert "17 jobs: 14 completed, 1 failed, 1 not run, 1 interrupted; 5 variants" in text
    assert (f"`{folder.name}` | interrupted | stopped by SIGTERM at epoch 2, step 20 (the "
            f"sweep's command resumes it)") in text
    [stride2] = [v for v in report.variants if v.label == "lenet5 · stride2"
                 and v.flat["dataset.name"] == "mnist"]
    assert len(stride2.failed) == 1  # the diverged seed 3 only


@pytest.mark.parametrize("last_run", [None, "interrupted", "failed"])
def test_a_job_another_process_runs_now_is_listed_as_running(sweep, last_run):
    """Its lock held: running now, not lost; an interrupted or failed run of it being run
    again is not counted as a failed seed."""
    from downsample_study.runtime.locks import job_lock

    folder = sweep / "dataset=mnist,downsample=maxpool,seed=3"  # started, no results.json
    if last_run is not None:
        folder = write_job(sweep, "mnist", "stride2", 4, 0.98)
        results = json.loads((folder / "results.json").read_text())
        results.update(status=last_run, error="stopped by SIGTERM at epoch 2, step 20")
        (folder / "results.json").write_text(json.dumps(results))
    with job_lock(folder):  # flock: another descriptor of this process is refused it too
        report = write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    reason = "running now" + (f" (its last run: {last_run})" if last_run else "")
    assert f"`{folder.name}` | running | {reason} |" in text
    assert "1 running; 5 variants" in text
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


def test_jobs_that_never_started_are_listed_a_row_per_variant(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1, 3):
        folder = write_job(sweep, "mnist", "maxpool", seed, 0.98)
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(f"- downsample=maxpool\n- seed={seed}\n")
    (sweep / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n"
        "    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params: {seed: 'range(6)', downsample: 'maxpool,avgpool'}\n"
        "  overrides:\n"
        "    task: []\n"
    )
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    never = [(j.status, j.name, j.error) for j in report.unfinished]
    assert sorted(never) == sorted(
        [("not run", f"downsample=avgpool,seed={seed}", "never started") for seed in range(6)]
        + [("not run", f"downsample=maxpool,seed={seed}", "never started") for seed in (2, 4, 5)])
    table = (sweep / "report.md").read_text().split("## Jobs without results")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert sorted(rows) == [
        "| `downsample=avgpool`, seed 0–5 | not run | never started (6 jobs) |",
        "| `downsample=maxpool`, seed 2, 4–5 | not run | never started (3 jobs) |"]


@pytest.mark.parametrize(("content", "what"), [
    ("", "not a study's outcome (KeyError"), ("lr: [0.001\n", "unreadable (ParserError"),
    ("value: 0.9\ntrials: []\n", "not a study's outcome (KeyError"),
    ("lr: 0.001\nvalue: 0.9\ntrials: []\n", "not a study's outcome (ValueError: no trials"),
    ("lr: fast\nvalue: 0.9\ntrials: []\n", "not a study's outcome (ValueError"),
    ("- 0.001\n", "not a study's outcome (TypeError"),
])
def test_a_best_yaml_that_is_no_studys_outcome_is_one_line_naming_it(sweep, content, what,
                                                                    capsys):
    best = sweep / "tuning" / "dataset=mnist,downsample=stride2" / "best.yaml"
    best.parent.mkdir(parents=True)
    best.write_text(content)
    assert main([str(sweep), "--no-wandb", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {best}: {what}") and err.count("\n") == 1
    assert "delete it to run the study again" in err and "Traceback" not in err


STUDY = "tuning/dataset=mnist,downsample=stride2"


@pytest.mark.parametrize(("file", "content", "without_it"), [
    ("dataset=mnist,downsample=maxpool,seed=0/epochs.csv", "epoch,val/acc_top1\n1,abc\n",
     "its validation curve is left out"),
    ("dataset=mnist,downsample=maxpool,seed=0/epochs.csv", b"\xff\xfe\x00",
     "its validation curve is left out"),
    ("multirun.yaml", "hydra: [\n", "the jobs that never started are not listed"),
    ("dataset=mnist,downsample=maxpool,seed=3/.hydra/overrides.yaml", "- [\n",
     "its job is known by its results alone"),
    (f"{STUDY}/trial0/.hydra/overrides.yaml", "- [\n", "the study is known by its folder's name"),
    (f"{STUDY}/trial0/.hydra/config.yaml", "trainer: {\n", "the study's epochs are not stated"),
])
def test_a_sweep_file_beside_the_results_that_cannot_be_read_is_a_warning(
        sweep, file, content, without_it, caplog, monkeypatch):
    path = sweep / file
    if file.startswith(STUDY):
        path.parent.mkdir(parents=True)
        (sweep / STUDY / "best.yaml").write_text(
            "lr: 0.001\nvalue: 0.9\ntrials: [{lr: 0.001, value: 0.9}]\n")
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    for name in ("downsample_study", "downsample_study.report"):  # Hydra's logging config
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)  # may hold them
    with caplog.at_level(logging.WARNING, logger="downsample_study.report"):
        assert main([str(sweep), "--no-wandb", "--no-plots"]) == 0
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"{path}: unreadable (") and warning.endswith(without_it)
    text = (sweep / "report.md").read_text()
    assert "14 completed, 1 failed" in text  # every job's results still counted


def test_a_job_known_by_its_results_alone_is_counted_once(tmp_path):
    """A record's copy that kept a job's results.json but lost its .hydra/: the report names
    the job from its results, and does not list it again as never started."""
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        folder = write_job(sweep, "mnist", "maxpool", seed, 0.98)
        results = json.loads((folder / "results.json").read_text())
        results["overrides"] = f"downsample=maxpool,seed={seed}"
        (folder / "results.json").write_text(json.dumps(results))
    (sweep / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n"
        "    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params: {seed: 'range(3)', downsample: maxpool}\n"
        "  overrides:\n"
        "    task: []\n"
    )
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    assert len(report.jobs) == 3  # seeds 0 and 1 completed, seed 2 never started
    assert [(j.status, j.name, j.error) for j in report.unfinished] == [
        ("not run", "downsample=maxpool,seed=2", "never started")]
