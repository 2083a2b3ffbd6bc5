"""Stops: SIGTERM (kill, timeout, scancel, preemption) or SIGINT (Ctrl-C) stop a job at a step
boundary with a resumable checkpoint, record it as interrupted and exit with 128 + the signal;
running the same command again ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from support import launch, results_under, signal_at_step

from downsample_study.results import read_epochs

SLOW_CLI_TIMEOUT = 300


@pytest.fixture
def job(quick) -> list[str]:
    """3 epochs of 10 steps, dropout on: a resume must continue the data order and the masks."""
    return [*quick, "trainer.max_epochs=3", "downsample.dropout=0.3", "logger=csv",
            "evaluation.feature_maps.enabled=false"]


@pytest.mark.parametrize(("signum", "schedule"), [
    (signal.SIGTERM, "none"), (signal.SIGINT, "none"), (signal.SIGTERM, "onecycle"),
    (signal.SIGTERM, "step"), (signal.SIGTERM, "cosine"),
])
def test_a_signal_stops_the_job_mid_epoch_and_the_rerun_ends_as_if_never_stopped(
    signum, schedule, job, monkeypatch, tmp_path, capsys
):
    job = [*job, f"optimizer.scheduler.name={schedule}"]  # a schedule resumes at its step
    with monkeypatch.context() as patch:
        signal_at_step(patch, 14, signum)  # in the second epoch
        run = launch([*job, "hydra.run.dir=out"], capsys)
    assert run.exit_code == 128 + signum
    [stopped] = results_under(tmp_path / "out")
    assert stopped["status"] == "interrupted" and stopped["signal"] == signum.name
    assert stopped["stopped_at"] == {"epoch": 2, "step": 15}  # the step that was running ends
    assert stopped["resume_checkpoint"].endswith("checkpoints/last.ckpt")
    assert "run the same command again to resume" in run.output and "Traceback" not in run.output

    assert launch([*job, "hydra.run.dir=out"]).exit_code == 0
    assert launch([*job, "hydra.run.dir=reference"]).exit_code == 0
    [resumed], [reference] = results_under(tmp_path / "out"), results_under(tmp_path / "reference")
    assert resumed["status"] == "completed" and resumed["resumed_from"].endswith("last.ckpt")
    for key in ("val", "test", "best_epoch", "epochs"):
        assert resumed[key] == reference[key], key
    # every epoch's row once, the same numbers (the time each took aside)
    without_time = [[{k: v for k, v in row.items() if k != "seconds"} for row in read_epochs(
        tmp_path / name)] for name in ("out", "reference")]
    assert without_time[0] == without_time[1] and len(without_time[0]) == 3
    assert not list((tmp_path / "out" / "checkpoints").glob("*-v*"))


@pytest.mark.parametrize("nohup", [False, True])
def test_a_hang_up_stops_the_job_as_a_kill_does_unless_it_is_ignored(nohup, job, monkeypatch,
                                                                     tmp_path, capsys):
    """The terminal closed (an ssh connection dropped): a checkpoint of the step, not a job
    killed mid-epoch; started under nohup (SIGHUP ignored), the job goes on."""
    with monkeypatch.context() as patch:
        if nohup:
            previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal_at_step(patch, 14, signal.SIGHUP)
        try:
            run = launch([*job, "hydra.run.dir=out"], capsys)
        finally:
            if nohup:
                signal.signal(signal.SIGHUP, previous)
    [results] = results_under(tmp_path / "out")
    if nohup:
        assert run.exit_code == 0 and results["status"] == "completed"
    else:
        assert run.exit_code == 128 + signal.SIGHUP and results["signal"] == "SIGHUP"
        assert results["status"] == "interrupted" and results["stopped_at"]["step"] == 15


def test_a_stopped_sweep_prints_its_summary_exits_with_the_signal_and_finishes_on_a_rerun(
    job, monkeypatch, tmp_path, capsys
):
    sweep = ["-m", *job, "downsample=maxpool,avgpool", "hydra.sweep.dir=sweep"]
    with monkeypatch.context() as patch:
        signal_at_step(patch, 5, signal.SIGTERM)  # the first job, first epoch
        run = launch(sweep, capsys)
    assert run.exit_code == 128 + signal.SIGTERM
    assert "1 interrupted" in run.output and "the sweep was stopped by a signal" in run.output
    assert [r["status"] for r in results_under(tmp_path / "sweep")] == ["interrupted"]
    # the same command finishes it: the stopped job resumes, the other runs
    again = launch(sweep, capsys)
    assert again.exit_code == 0 and "2 completed" in again.output
    statuses = sorted((r["status"], bool(r["resumed_from"])) for r in
                      results_under(tmp_path / "sweep"))
    assert statuses == [("completed", False), ("completed", True)]


@pytest.mark.slow
def test_a_parallel_sweep_stops_its_running_jobs_and_starts_no_new_one(quick, tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "downsample_study", "-m", *quick, "trainer.max_epochs=50",
               "logger=none", "evaluation.feature_maps.enabled=false",
               "downsample=maxpool,avgpool,stride2",
               "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    with open(tmp_path / "sweep.log", "w") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + SLOW_CLI_TIMEOUT
        while len(list(sweep.glob("*/epochs.csv"))) < 2:  # both workers are training
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C, scancel or a preemption reach
        assert proc.wait(timeout=SLOW_CLI_TIMEOUT) == 128 + signal.SIGTERM
    output = (tmp_path / "sweep.log").read_text()
    assert "Traceback" not in output
    statuses = sorted(r["status"] for r in results_under(sweep))
    assert statuses == ["interrupted", "interrupted"]  # the third never started
    assert "0 completed, 0 failed, 2 interrupted; 1 without: 1 not run" in output


def test_a_signal_after_training_stops_at_once_and_the_rerun_trains_no_more(
    job, monkeypatch, tmp_path, capsys
):
    from downsample_study.evaluations.configs import EVALUATIONS

    original = EVALUATIONS["shift"]

    def shift_robustness(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # while measuring the selected checkpoint
        return original(*args, **kwargs)

    args = [*job, "evaluation.shift.enabled=true", "trainer.max_epochs=2"]
    with monkeypatch.context() as patch:
        patch.setitem(EVALUATIONS.builders, "shift", shift_robustness)
        run = launch([*args, "hydra.run.dir=out"], capsys)
    assert run.exit_code == 128 + signal.SIGTERM
    [stopped] = results_under(tmp_path / "out")
    assert stopped["status"] == "interrupted" and stopped["stopped_at"]["epoch"] == 2
    assert launch([*args, "hydra.run.dir=out"]).exit_code == 0
    assert launch([*args, "hydra.run.dir=reference"]).exit_code == 0
    [resumed], [reference] = results_under(tmp_path / "out"), results_under(tmp_path / "reference")
    assert resumed["status"] == "completed" and resumed["epochs"] == 2
    shift = [r["evaluations"]["shift"]["summary"] for r in (resumed, reference)]
    assert resumed["test"] == reference["test"] and shift[0] == shift[1]


def test_a_job_requeued_by_its_launcher_is_not_recorded_as_stopped_by_the_sigterm_that_follows(
    job, monkeypatch, tmp_path, capsys
):
    """submitit's USR2 handler requeues the task and exits it; SLURM's SIGTERM for the requeue
    then reaches a job already unwinding. Recorded as interrupted, the task would end for its
    sweep (its result written); it must exit to run again, and the rerun resumes."""
    from downsample_study.runtime.stops import StopAtStepBoundary

    def requeue(signum, frame):  # what submitit does: scontrol requeue, then exit
        raise SystemExit(-1)

    def on_exception(self, trainer, module, exception):  # SLURM's SIGTERM, while unwinding
        original(self, trainer, module, exception)
        os.kill(os.getpid(), signal.SIGTERM)

    original = StopAtStepBoundary.on_exception
    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(StopAtStepBoundary, "on_exception", on_exception)
            signal_at_step(patch, 15, signal.SIGUSR2)
            run = launch([*job, "hydra.run.dir=out"], capsys)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert run.exit_code not in (0, 128 + signal.SIGTERM), run.output
    assert results_under(tmp_path / "out") == [], "recorded as if the job had ended"
    assert (tmp_path / "out" / "checkpoints" / "last.ckpt").exists()
    assert launch([*job, "hydra.run.dir=out"]).exit_code == 0
    [resumed] = results_under(tmp_path / "out")
    assert resumed["status"] == "completed" and resumed["epochs"] == 3
