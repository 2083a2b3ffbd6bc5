"""What a reviewer sees in W&B, TensorBoard and CSV: every epoch once, counted from 1; the
selected checkpoint's numbers in the run's summary, not in its history; the run's config with
its parameter and FLOP counts; its console, results and checkpoints kept with it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import csv_rows, launch, read_wandb_runs, results_under, tensorboard_scalars

EPOCHS = 2


@pytest.fixture
def job(quick) -> list[str]:
    return [*quick, f"trainer.max_epochs={EPOCHS}", "evaluation.feature_maps.enabled=false",
            "hydra.run.dir=out"]


def test_wandb_shows_each_epoch_once_and_the_selected_checkpoint_as_its_summary(
    job, tmp_path, monkeypatch
):
    monkeypatch.setenv("WANDB_PROJECT", "from-the-environment")
    monkeypatch.setenv("WANDB_TAGS", "mine,also-mine")
    assert launch([*job, "logger=wandb", "logger.wandb.mode=offline", "logger.wandb.log_model=true",
                   "logger.wandb.options={notes: reviewed}"]).exit_code == 0
    [results] = results_under(tmp_path / "out")
    [run] = read_wandb_runs(tmp_path / "out" / "wandb")
    validations = [row for row in run.history if "val/acc_top1" in row]
    assert [row["epoch"] for row in validations] == list(range(1, EPOCHS + 1))
    assert {row["epoch"] for row in run.history if "epoch" in row} == {1, 2}  # one numbering
    assert not any(key.startswith("test/") for row in run.history for key in row)
    assert run.summary["test/acc_top1"] == pytest.approx(results["test"]["acc_top1"])
    assert run.summary["val/acc_top1"] == pytest.approx(results["val"]["acc_top1"])
    assert run.summary["best_epoch"] == results["best_epoch"]
    assert run.summary["test/shift_consistency_zero"] == pytest.approx(
        results["evaluations"]["shift"]["summary"]["consistency_zero"])
    assert run.config["params"]["total"] == 61_706 and run.config["flops_forward"] == 833_040
    assert run.project == "from-the-environment"
    assert {"mine", "also-mine", "mnist", "maxpool"} <= set(run.tags)
    assert {"results.json", "epochs.csv"} <= set(run.files)
    assert any(kind == "model" for kind, _ in run.artifacts)  # logger.wandb.log_model


def test_a_failed_runs_console_and_error_are_in_its_wandb_run(quick, tmp_path):
    # a process of its own: wandb hooks the sys.stdout of the moment it is first imported,
    # which inside pytest may be an earlier test's capture
    run = subprocess.run(
        [sys.executable, "-m", "downsample_study", *quick, "optimizer=sgd", "optimizer.lr=1e6",
         "downsample.batch_norm=false", "logger=wandb", "logger.wandb.mode=offline",
         "hydra.run.dir=out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    [wandb_run] = read_wandb_runs(tmp_path / "out" / "wandb")
    assert wandb_run.exit_code == 1
    assert "params: 61,706 total" in wandb_run.output  # what the job printed
    assert "the run diverged" in wandb_run.output  # and its error


def test_tensorboard_has_each_epoch_once_and_the_selected_checkpoint_as_hparams_metrics(
    job, tmp_path
):
    assert launch([*job, "logger=tensorboard"]).exit_code == 0
    [results] = results_under(tmp_path / "out")
    scalars, plugins = tensorboard_scalars(tmp_path / "out" / "tensorboard")
    assert len(scalars["val/acc_top1"]) == EPOCHS  # no point for the re-validation
    assert scalars["epoch"][-1] == EPOCHS and "hp_metric" not in scalars
    assert scalars["test/acc_top1"] == pytest.approx([results["test"]["acc_top1"]])
    assert scalars["selected/val/acc_top1"] == pytest.approx([results["val"]["acc_top1"]])
    assert "hparams" in plugins  # the HParams tab: the config with those metrics


def test_csv_counts_epochs_from_1_and_ends_with_the_test_numbers(job, tmp_path):
    assert launch([*job, "logger=csv"]).exit_code == 0
    [results] = results_under(tmp_path / "out")
    rows = csv_rows(tmp_path / "out" / "csv" / "metrics.csv")
    validations = [row for row in rows if row.get("val/acc_top1")]
    assert [float(row["epoch"]) for row in validations] == [1.0, 2.0]
    assert float(rows[-1]["test/acc_top1"]) == pytest.approx(results["test"]["acc_top1"])
    epochs = csv_rows(tmp_path / "out" / "epochs.csv")
    assert [row["epoch"] for row in epochs] == ["1", "2"]
    best = max(epochs, key=lambda row: float(row["val/acc_top1"]))
    assert int(best["epoch"]) == results["best_epoch"]  # one numbering everywhere


@pytest.mark.parametrize("packed", [False, True], ids=["solo", "packed"])
def test_three_loggers_at_once_each_hold_every_members_run_with_its_learning_rate(
    quick, tmp_path, packed, capsys
):
    args = [*quick, f"trainer.max_epochs={EPOCHS}", "evaluation.feature_maps.enabled=false",
            "logger=[wandb,tensorboard,csv]", "logger.wandb.mode=offline",
            "optimizer.scheduler.name=cosine"]
    args = (["-m", *args, "hydra/sweeper=packed", "seed=0,1", "hydra.sweep.dir=out"] if packed
            else [*args, "hydra.run.dir=out"])
    run = launch(args, capsys)
    assert run.exit_code == 0
    folders = sorted(p.parent for p in (tmp_path / "out").glob("**/results.json")
                     if "wandb" not in p.parts)
    assert len(folders) == (2 if packed else 1)
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        assert [t["name"] for t in results["trackers"]] == ["wandb", "tensorboard", "csv"]
        assert results["trackers"][0]["mode"] == "offline"
        epochs = csv_rows(folder / "epochs.csv")
        lrs = [float(row["train/lr"]) for row in epochs]
        assert 0 < lrs[1] < lrs[0] <= 1e-3  # cosine: falls each epoch from optimizer.lr
        [wandb_run] = read_wandb_runs(folder / "wandb")
        logged = [row for row in wandb_run.history if "val/acc_top1" in row]
        assert [row["train/lr"] for row in logged] == pytest.approx(lrs)
        assert wandb_run.summary["test/acc_top1"] == pytest.approx(results["test"]["acc_top1"])
        scalars, _ = tensorboard_scalars(folder / "tensorboard")
        assert len(scalars["val/acc_top1"]) == EPOCHS and "train/lr" in scalars
        assert scalars["test/acc_top1"] == pytest.approx([results["test"]["acc_top1"]])
        rows = csv_rows(folder / "csv" / "metrics.csv")
        assert float(rows[-1]["test/acc_top1"]) == pytest.approx(results["test"]["acc_top1"])
    assert run.output.count("W&B offline run") == len(folders)  # where each member's went
