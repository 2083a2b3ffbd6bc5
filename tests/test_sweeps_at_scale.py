"""Sweeps at scale: failure isolation under the parallel launcher, DDP inside a multirun,
resume after a kill, W&B grouping, seeds and the Optuna LR search (slots: test_slots).

The parallel and kill-and-resume sweeps run the real command line in a subprocess (the way a
user starts them: fresh joblib workers, a process that can be SIGKILLed); the others run in
process through ``launch``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import cli, launch, read_wandb_runs, results_under

from downsample_study.runtime.slots import (
    available_cores,
)
from downsample_study.sweeps.launchers import slurm_gpus, slurm_tasks
from downsample_study.sweeps.naming import sweep_id, variant_name

SLOW_CLI_TIMEOUT = 300


def job_results(sweep: Path) -> dict[str, dict]:
    """results.json of every job folder of a sweep, by folder name."""
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}


# --- names and SLURM resources ----------------------------------------------------------------


def test_variant_name_drops_the_seed_and_excluded_keys():
    overrides = ["seed=3", "downsample=stride2", "paths.data_dir=/d", "dataset=mnist"]
    assert variant_name(overrides, ["paths.data_dir"]) == "dataset=mnist,downsample=stride2"
    assert variant_name(["seed=1"], []) == "default"
    assert len(variant_name([f"model.channels=[{','.join(['64'] * 40)}]"], [])) == 64


def test_sweep_id_is_the_sweep_folder_relative_to_the_working_directory():
    assert sweep_id("multirun/2024-01-02/03-04-05") == "multirun_2024-01-02_03-04-05"
    assert sweep_id(Path.cwd() / "sweep") == "sweep"


@pytest.mark.parametrize(
    ("accelerator", "devices", "tasks", "gpus"),
    [("cpu", 1, 1, None), ("gpu", 1, 1, 1), ("gpu", 4, 4, 4), ("cuda", [0, 1], 2, 2),
     ("auto", "1", 1, None)],
)
def test_slurm_tasks_and_gpus_follow_the_trainer_devices(accelerator, devices, tasks, gpus):
    assert slurm_tasks(devices) == tasks
    assert slurm_gpus(accelerator, devices) == gpus


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["hydra/launcher=slurm", "accelerator=ddp"], "trainer.devices=-1: on SLURM give"),
     (["hydra/launcher=parallel", "parallel.jobs_per_gpu=0"], "parallel.jobs_per_gpu: must be"),
     (["hydra/launcher=parallel", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs: must be"),
     (["hydra/launcher=local", "hydra.launcher.timeout_min=0"],
      "hydra.launcher.timeout_min: must be >= 1, got 0"),
     # a key the plugin's schema lacks, which "+" adds to its closed node
     (["hydra/launcher=parallel", "+hydra.launcher.n_job=2"],
      "hydra.launcher.n_job: no such key (did you mean n_jobs?); keys of hydra.launcher:"),
     # the lr_search preset's keys from before it was the tuned sweeper's: named, with today's
     (["hydra/sweeper=lr_search", "hydra.sweeper.n_trials=2"],
      "hydra.sweeper.n_trials: no such key; keys of hydra.sweeper: _target_, lr, max_batch_size, "
      "params, storage, tune_only"),
     (["hydra/sweeper=tuned", "+hydra.sweeper.pack=5"],
      "hydra.sweeper.pack: no such key; keys of hydra.sweeper: _target_, lr, max_batch_size"),
     (["hydra/sweeper=lr_search", "hydra.sweeper.lr.trials=0"],
      "hydra.sweeper.lr.trials: must be >= 1 when hydra.sweeper.tune_only is true (the studies "
      "are all it runs), got 0"),
     (["hydra/sweeper=tuned", "hydra.sweeper.tune_only=yes"],
      "hydra.sweeper.tune_only: must be true or false, got 'yes'"),
     # a sweep of no job would end "0 completed, 0 failed" with exit status 0
     (["seed=range(0)"], "seed=range(0): an empty sweep, so no job to run"),
     (["hydra/sweeper=packed", "downsample=maxpool,stride2", "seed=range(2,2)"],
      "seed=range(2,2): an empty sweep"),
     # one job twice: its second run skips the first's, and the sweep counts it twice
     (["seed=0,1,1", "downsample=maxpool,avgpool"],
      "seed=0,1,1: 1 given more than once, which would run the same job again")],
)
def test_a_bad_sweep_setting_stops_the_sweep_in_one_line(overrides, message, capsys):
    run = launch(["-m", "mode=summary", *overrides, "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1
    assert f"error: {message}" in run.output and "Traceback" not in run.output


@pytest.mark.parametrize(("n_jobs", "seeds", "warned"), [
    (4, "range(4)", True),
    (4, "0,1", False),  # only two jobs to run at once
    (2, "range(4)", False),
])
def test_more_cpu_jobs_side_by_side_than_cores_is_pointed_out(n_jobs, seeds, warned,
                                                               monkeypatch, caplog):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from downsample_study.config.hydra_versions import VERSION_BASE
    from downsample_study.config.store import CONFIG_DIR, register_configs
    from downsample_study.runtime import slots
    from downsample_study.sweeps import launchers

    register_configs()
    monkeypatch.setattr(slots, "available_cores", lambda: 2)
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        config = compose("config", return_hydra_config=True, overrides=[
            "hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}", "accelerator=cpu"])
    with open_dict(config):
        config.hydra.overrides.task = [f"seed={seeds}"]
    launchers._warn_more_jobs_than_cores(config)
    line = f"hydra.launcher.n_jobs={n_jobs} on 2 CPU cores: the jobs beyond one a core share"
    assert (line in caplog.text) == warned


@pytest.mark.parametrize(("commands", "message"), [
    ({}, "hydra/launcher=slurm: sbatch, srun not found (PATH); it submits from a SLURM "
         "cluster's login node"),
    ({"sbatch": "echo 'sbatch: error: invalid partition specified: nope' >&2; exit 1",
      "srun": "exit 0"},
     "sbatch refused the sweep's jobs (exit status 1): sbatch: error: invalid partition "
     "specified: nope; check the cluster and hydra.launcher.*"),
])
def test_slurm_without_a_cluster_stops_the_sweep_in_one_line(commands, message, tmp_path,
                                                             monkeypatch, capsys):
    commands_dir = tmp_path / "bin"  # SLURM's commands, as this test wants them
    commands_dir.mkdir()
    for name, body in commands.items():
        (commands_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (commands_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(commands_dir))
    run = launch(["-m", "mode=summary", "hydra/launcher=slurm", "seed=0,1",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1
    assert f"error: {message}" in run.output and "Traceback" not in run.output


# --- parallel launcher ------------------------------------------------------------------------


@pytest.mark.slow
def test_parallel_sweep_gives_each_job_a_slot_and_isolates_a_failing_one(quick, tmp_path):
    # lr=1e6 diverges at its first step; the other job must finish
    sweep = tmp_path / "sweep"
    run = cli(["-m", *quick, "optimizer=sgd", "optimizer.lr=0.01,1e6",
               "downsample.batch_norm=false", "hydra/launcher=parallel",
               "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "2 jobs with results, 1 completed, 1 failed" in run.stderr + run.stdout
    by_lr = {r["config"]["optimizer"]["lr"]: r for r in job_results(sweep).values()}
    good, bad = by_lr[0.01], by_lr[1e6]
    assert good["status"] == "completed"
    assert bad["status"] == "failed" and "diverged" in bad["error"]
    # both jobs ran at once, each in its own slot with half the cores
    assert sorted(r["resources"]["slot"] for r in (good, bad)) == [0, 1]
    assert good["resources"]["threads"] == max(1, available_cores() // 2)
    assert good["resources"]["threads_at_end"] >= good["resources"]["threads"]
    assert good["resources"]["device"] == "cpu" and good["resources"]["processes"] == 1

    runs = {r.config["optimizer"]["lr"]: r for r in read_wandb_runs(sweep)}
    assert runs[0.01].exit_code == 0 and runs[1e6].exit_code == 1  # the failed run says so
    assert {r.group for r in runs.values()} == {sweep_id(sweep)}  # one group per sweep
    assert runs[0.01].job_type == variant_name(good["overrides"].split(","), [])
    # one documented command uploads the whole sweep: every run matches this glob, once
    offline = sorted(sweep.glob("*/wandb/offline-run-*"))
    assert sorted(p.name.rsplit("-", 1)[1] for p in offline) == sorted(
        r.run_id for r in runs.values()
    )


# --- DDP inside a multirun --------------------------------------------------------------------


def _test_in_one_process(overrides: list[str], checkpoint: str, folder: Path
                         ) -> dict[str, float]:
    """The test metrics of ``checkpoint`` evaluated by one process on the whole test set."""
    import lightning as L
    from hydra import compose, initialize_config_dir

    from downsample_study.config.hydra_versions import VERSION_BASE
    from downsample_study.config.store import CONFIG_DIR, register_configs
    from downsample_study.job.build import build_job, member

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        job = build_job([member(compose("config", overrides=overrides), folder)], folder)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return trainer.test(job.module, datamodule=job.datamodule, ckpt_path=checkpoint,
                        verbose=False)[0]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
def test_two_process_ddp_in_a_multirun_equals_one_process_evaluation(quick, tmp_path):
    # 200 test images over 2 ranks, in batches of 64 per rank: uneven last batches, which a
    # padding sampler would fill with duplicates
    overrides = [*quick, "dataset.eval_batch_size=64", "logger=none"]
    run = launch(["-m", *overrides, "accelerator=ddp", "trainer.accelerator=cpu",
                  "trainer.devices=2", "hydra.sweep.dir=sweep"])
    assert run.exit_code == 0
    [job] = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]  # the sweep ran once
    [results] = results_under(tmp_path / "sweep")
    assert results["config"]["trainer"]["strategy"] == "ddp_spawn"
    assert results["resources"]["processes"] == 2 and results["epochs"] == 1
    single = _test_in_one_process(overrides, results["checkpoint"], tmp_path / "single")
    assert results["test"]["acc_top1"] == single["test/acc_top1"]
    assert results["test"]["acc_top2"] == single["test/acc_top2"]
    # the loss is a float mean: the ranks sum their shards in another order
    assert results["test"]["loss"] == pytest.approx(single["test/loss"], rel=1e-6)
    assert job.name in results["checkpoint"]


def test_ddp_that_would_rerun_the_command_line_is_refused_in_a_multirun(quick, tmp_path, capsys):
    run = launch(["-m", *quick, "logger=none", "trainer.strategy=ddp", "trainer.devices=2",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1
    [results] = results_under(tmp_path / "sweep")
    assert results["status"] == "failed"
    assert "re-runs the whole sweep" in results["error"] and "accelerator=ddp" in results["error"]


# --- resume -----------------------------------------------------------------------------------


def _kill_when(proc: subprocess.Popen, ready, timeout: float = SLOW_CLI_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the sweep ended before it could be killed:\n{proc.stderr}"
        assert time.monotonic() < deadline, "the sweep never reached the kill point"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Checkpoint directory")  # the resumed job's own folder
def test_sweep_killed_midway_resumes_to_the_results_of_an_uninterrupted_sweep(quick, tmp_path):
    # dropout on, so the resumed job's dropout masks must continue where they stopped
    args = ["-m", *quick, "logger=none", "trainer.max_epochs=4", "downsample.dropout=0.3",
            "downsample=maxpool,avgpool"]
    sweep = tmp_path / "sweep"

    def first_done_second_started() -> bool:
        done = list(sweep.glob("*/results.json"))
        started = [p for p in sweep.glob("*/checkpoints/last.ckpt")
                   if not (p.parents[1] / "results.json").exists()]
        return bool(done and started)

    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "downsample_study", *args, f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _kill_when(proc, first_done_second_started)
    [(done_name, before)] = job_results(sweep).items()
    done_stamp = (sweep / done_name / "results.json").stat().st_mtime_ns

    assert launch([*args, f"hydra.sweep.dir={sweep}"]).exit_code == 0
    resumed = job_results(sweep)
    assert launch([*args, "hydra.sweep.dir=uninterrupted"]).exit_code == 0
    reference = job_results(tmp_path / "uninterrupted")

    assert set(resumed) == set(reference) and len(resumed) == 2
    assert (sweep / done_name / "results.json").stat().st_mtime_ns == done_stamp
    assert resumed[done_name] == before  # not retrained
    [interrupted] = set(resumed) - {done_name}
    assert resumed[interrupted]["resumed_from"].endswith("last.ckpt")
    for name, result in resumed.items():
        expected = reference[name]
        assert result["status"] == "completed" and result["epochs"] == 4
        assert (result["val"], result["test"], result["best_epoch"]) == (
            expected["val"], expected["test"], expected["best_epoch"]
        )

    # a third run has nothing left to do: it skips every job before loading any data
    again = launch([*args, f"hydra.sweep.dir={sweep}", "paths.data_dir=/nonexistent"])
    assert again.exit_code == 0
    assert (sweep / done_name / "results.json").stat().st_mtime_ns == done_stamp


@pytest.mark.slow
def test_submitit_local_preset_runs_each_job_in_its_own_process(quick, tmp_path):
    sweep = tmp_path / "sweep"
    run = cli(["-m", *quick, "logger=none", "evaluation.feature_maps.enabled=false",
               "downsample=maxpool,avgpool", "hydra/launcher=local",
               f"hydra.sweep.dir={sweep}"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = job_results(sweep)
    assert len(results) == 2 and all(r["status"] == "completed" for r in results.values())
    # submitit ran both jobs and pickled each one's return value, as it does on SLURM
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2


# --- seeds and the LR search ------------------------------------------------------------------


def test_seed_range_makes_one_job_per_seed(quick, tmp_path):
    assert launch(["-m", *quick, "mode=summary", "seed=range(5)",
                   "hydra.sweep.dir=sweep"]).exit_code == 0
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 5
    assert [name.rsplit("seed=", 1)[1].split(",")[0] for name in jobs] == list("01234")


@pytest.mark.slow
@pytest.mark.filterwarnings("error:.*optuna")  # a deprecation names Optuna's releases page
@pytest.mark.parametrize("sweeper", [
    ["hydra/sweeper=lr_search"],
    ["hydra/sweeper=tuned", "hydra.sweeper.tune_only=true"],  # what the preset sets
], ids=["preset", "tuned-tune_only"])
def test_lr_search_runs_one_optuna_study_per_variant_and_no_test_seed(sweeper, quick, tmp_path,
                                                                      capsys):
    import optuna
    from omegaconf import OmegaConf

    from downsample_study.report.build import write_report
    from downsample_study.sweeps.progress import describe, read_progress

    args = ["-m", *quick, "logger=none", "evaluation.feature_maps.enabled=false",
            "trainer.limit_train_batches=3", "downsample=avgpool,maxpool",
            "hydra.sweeper.lr.trials=2", "hydra.sweep.dir=sweep"]
    run = launch([*args, *sweeper], capsys)
    assert run.exit_code == 0, run.output[-3000:]
    assert ("sweep sweep: 4 learning-rate trials under tuning/, 4 completed; 2 studies ended "
            "with a best rate\n") in run.output
    sweep = tmp_path / "sweep"
    assert not list(sweep.glob("*/results.json")) and "packing" not in run.output  # no seed
    studies, best = sorted(sweep.glob("tuning/*/best.yaml")), {}
    assert len(studies) == 2
    for path in studies:
        study = OmegaConf.load(path)
        assert study.optuna == optuna.__version__  # the version that proposed its rates
        trials = [json.loads(p.read_text()) for p in path.parent.glob("trial*/results.json")]
        assert {t["provenance"]["versions"]["optuna"] for t in trials} == {optuna.__version__}
        # each trial's value is its job's val/acc_top1, at the log-uniform rate it was given
        by_lr = {t["config"]["optimizer"]["lr"]: t["val"]["acc_top1"] for t in trials}
        assert {t.lr: t.value for t in study.trials} == by_lr and len(by_lr) == 2
        assert all(1e-4 <= lr <= 1e-1 for lr in by_lr)
        best[trials[0]["config"]["downsample"]["name"]] = study.lr
    assert describe(read_progress(sweep))[1:] == [
        "learning-rate studies: 2 of 2 with their best rate (tuning/*/best.yaml)",
        "learning-rate trials: 4 of 4 finished (4 completed); 0 running now",
        "done: every planned job finished"]
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    assert "no test seed trained (the studies alone: hydra/sweeper=lr_search)" in text
    assert "| avgpool | 2 (2 completed) | " in text and "| maxpool | 2 (2 completed) | " in text

    # its studies are the tuned sweeper's: the seeds train at their rates, nothing tuned again
    trials = {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")}
    seeds = launch([*args, "hydra/sweeper=tuned", "seed=0"], capsys)
    assert seeds.exit_code == 0 and seeds.output.count("best.yaml") == 2
    assert {p: p.stat().st_mtime_ns for p in trials} == trials
    tests = [json.loads(p.read_text())["config"] for p in sweep.glob("*/results.json")]
    assert sorted((c["downsample"]["name"], c["optimizer"]["lr"]) for c in tests) == sorted(
        best.items())


def test_an_lr_search_whose_trials_all_fail_ends_in_one_line(quick, tmp_path, capsys):
    # each trial fails as it starts: no training image left (the synthetic MNIST has 700)
    run = launch(["-m", *(o for o in quick if not o.startswith("dataset.val_size=")),
                  "logger=none", "hydra/sweeper=lr_search", "hydra.sweeper.lr.trials=2",
                  "dataset.val_size=700", "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert run.output.count("error: dataset.val_size=700 leaves no training data") == 2
    [study] = (tmp_path / "sweep" / "tuning").iterdir()
    assert (f"error: tuning {study.name}: none of its 2 trials completed (see "
            f"sweep/tuning/{study.name}/trial*/results.json)\n") in run.output
    assert not (study / "best.yaml").exists()


@pytest.mark.parametrize(("sweeper", "storage"), [
    ("lr_search", "hydra.sweeper.storage=sqlite:///lr_search.db"),  # the preset's, before
    ("lr_search", "hydra.sweeper.storage=lr_search.log"),  # Optuna's journal file: none either
    ("tuned", "+hydra.sweeper.storage=sqlite:///lr_search.db"),
])
def test_an_lr_search_storage_is_refused_in_one_line_naming_the_sweep_folder(
        sweeper, storage, quick, tmp_path, capsys):
    run = launch(["-m", *quick, "logger=none", f"hydra/sweeper={sweeper}", storage,
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert (f"error: hydra.sweeper.storage: not taken ({storage.split('=', 1)[1]}): each "
            f"variant's study is kept in the sweep folder, tuning/<variant>/ (its trials and "
            f"best.yaml), and the same command into the same hydra.sweep.dir continues it; leave "
            f"storage out\n") in run.output
    assert not results_under(tmp_path)  # no trial ran
