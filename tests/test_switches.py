"""Lightning's switches a user reaches for: each works, or is refused in one line."""

from __future__ import annotations

import pytest
from support import launch, results_under, summarize_sweep


@pytest.fixture
def job(quick) -> list[str]:
    return [*quick, "logger=csv", "evaluation.feature_maps.enabled=false", "hydra.run.dir=out"]


def test_fast_dev_run_is_a_smoke_run_marked_as_such(job, tmp_path, capsys):
    run = launch([*job, "trainer.fast_dev_run=true"], capsys)
    assert run.exit_code == 0 and "Traceback" not in run.output
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["smoke_test"] is True
    assert "the last weights of a smoke run" in run.output


def test_a_sweep_of_smoke_runs_says_so_in_its_summary(job, tmp_path, caplog):
    sweep = launch(["-m", *job, "trainer.fast_dev_run=2", "seed=0,1", "hydra.sweep.dir=sweep"])
    assert sweep.exit_code == 0
    status, logged = summarize_sweep(tmp_path / "sweep", caplog)
    assert status == 0
    assert "2 completed (2 of them smoke tests: trainer.fast_dev_run)" in logged


@pytest.mark.filterwarnings("ignore:.*AMP with fp16 is not supported on CPU")  # bf16 instead
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_with_clipping_trains_with_the_plain_optimizer(
    precision, job, tmp_path, capsys
):
    run = launch([*job, f"trainer.precision={precision}", "trainer.gradient_clip_val=1.0"],
                 capsys)
    assert run.exit_code == 0, run.output[-2000:]
    assert "optimizer.fused: off, so that trainer.gradient_clip_val=1.0 can clip" in run.output
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["config"]["optimizer"]["fused"]


def test_the_epoch_line_shows_the_epochs_mean_training_loss(job, tmp_path, capsys):
    from downsample_study.results import read_epochs

    run = launch(job, capsys)
    assert run.exit_code == 0
    [line] = [line for line in run.output.splitlines() if line.startswith("epoch 1/1")]
    shown = float(line.split("train/loss ")[1].split()[0])
    [row] = read_epochs(tmp_path / "out")
    assert shown == pytest.approx(row["train/loss_epoch"], abs=5e-5)


def test_a_precision_the_device_cannot_run_is_said_in_one_line_and_recorded(job, tmp_path,
                                                                            capsys):
    run = launch([*job, "trainer.precision=16-mixed"], capsys)
    assert run.exit_code == 0
    [line] = [line for line in run.output.splitlines() if "fp16" in line]
    assert line == ("trainer.precision=16-mixed: cpu has no fp16 mixed precision; the job "
                    "trains in bf16-mixed (trainer.precision=bf16-mixed says so)")
    [results] = results_under(tmp_path / "out")
    assert results["resources"]["precision"] == "bf16-mixed"
