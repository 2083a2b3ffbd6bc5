"""hydra/sweeper=tuned: each variant's learning rate searched on validation, then its test
seeds at that rate, and what the report makes of it; a study across Optuna versions."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from support import cli, launch, results_under

from downsample_study.errors import ConfigError, UserError
from downsample_study.report.build import write_report
from downsample_study.results import Provenance, Results, Status, write_results
from downsample_study.sweeps.progress import describe, read_progress
from downsample_study.sweeps.record import copy_record
from downsample_study.sweeps.tuning import (
    LrSearch,
    optuna_version,
    read_best,
    tune,
    variant_folder,
    variants,
)
from hydra_plugins.downsample_study_sweeper.tuned_sweeper import lr_search

# any warning of Optuna's (a deprecation names its releases page; ExperimentalWarning does not)
pytestmark = [pytest.mark.filterwarnings("error:.*optuna"),
              pytest.mark.filterwarnings("error::optuna.exceptions.ExperimentalWarning")]

TUNED = ["hydra/sweeper=tuned", "hydra.sweeper.lr.trials=3", "hydra.sweeper.lr.low=1e-3",
         "hydra.sweeper.lr.high=3e-2", "logger=none", "evaluation.feature_maps.enabled=false",
         "trainer.limit_train_batches=3"]


def test_variants_are_the_jobs_apart_from_their_seed():
    jobs = [["downsample=maxpool", "seed=0"], ["downsample=avgpool", "seed=0"],
            ["seed=1", "downsample=maxpool"]]
    assert variants(jobs) == {("downsample=maxpool",): [jobs[0], jobs[2]],
                              ("downsample=avgpool",): [jobs[1]]}


@pytest.mark.parametrize(("options", "key", "allowed"), [
    ({"trials": -1}, "hydra.sweeper.lr.trials", ">= 0"),
    ({"low": 0.0}, "hydra.sweeper.lr.low", "> 0"),
    ({"low": 0.1, "high": 0.01}, "hydra.sweeper.lr.high", "above lr.low"),
    ({"at_once": 0}, "hydra.sweeper.lr.at_once", ">= 1"),
    ({"trails": 3}, "hydra.sweeper.lr.trails", "trials, low, high"),
])
def test_bad_search_options_name_the_key(options, key, allowed):
    with pytest.raises(ConfigError) as err:
        lr_search(options)
    assert key in str(err.value) and allowed in str(err.value)


@pytest.mark.parametrize(("asked", "refused"), [
    (LrSearch(trials=6), None),
    (LrSearch(trials=6, at_once=3), None),  # faster, the same outcome
    (LrSearch(trials=12, high=0.01),
     "(lr.trials: 6 there, 12 here; lr.high: 0.1 there, 0.01 here)"),
    (LrSearch(trials=6, epochs=2), "(lr.epochs: unset there, 2 here)"),
])
def test_a_studys_outcome_is_reused_only_by_the_search_that_found_it(asked, refused, tmp_path):
    best = {"lr": 0.002, "value": 0.9, "trials": [{"lr": 0.002, "value": 0.9}]}
    (tmp_path / "best.yaml").write_text(OmegaConf.to_yaml(best))  # an earlier version's file
    assert read_best(tmp_path, asked).lr == 0.002
    best["search"] = LrSearch(trials=6).settings()
    (tmp_path / "best.yaml").write_text(OmegaConf.to_yaml(best))
    if refused is None:
        assert read_best(tmp_path, asked).lr == 0.002
        return
    with pytest.raises(UserError) as err:
        read_best(tmp_path, asked)
    assert f"best.yaml: the outcome of another search {refused}; delete it to run the " \
           f"study again, or sweep into another folder" in str(err.value)
    assert read_best(tmp_path).lr == 0.002  # what the report and progress read


def test_a_study_with_a_failed_trial_is_read_back(tmp_path):
    # a rate high enough to diverge fails its trial; the study goes on with the others
    best = {"lr": 0.002, "value": 0.9, "search": LrSearch().settings(),
            "trials": [{"lr": 0.002, "value": 0.9}, {"lr": 0.09, "value": None}]}
    (tmp_path / "best.yaml").write_text(OmegaConf.to_yaml(best))
    assert read_best(tmp_path, LrSearch()).trials == best["trials"]


OTHER_OPTUNA = "2.10.1"  # the version this project pinned before 2026-12


class Returned:
    """What a launcher hands back for a job: its task's return value (val/acc_top1)."""

    def __init__(self, value: float):
        self.return_value = value


def not_run(*_):
    raise AssertionError("nothing is to be launched or composed")


def version(recorded: str | None) -> str | None:
    return optuna_version() if recorded == "this" else recorded


@pytest.mark.parametrize(("recorded", "noted"), [
    (None, False),  # a best.yaml written before the version was recorded
    ("this", False),
    (OTHER_OPTUNA, True),
])
def test_a_finished_study_of_another_optuna_version_keeps_its_rate_and_says_so(
        recorded, noted, tmp_path, caplog):
    folder = tmp_path / variant_folder("downsample=maxpool")
    folder.mkdir(parents=True)
    best = {"lr": 0.002, "value": 0.9, "trials": [{"lr": 0.002, "value": 0.9}],
            "search": LrSearch(trials=1).settings()}
    if recorded is not None:
        best["optuna"] = version(recorded)
    (folder / "best.yaml").write_text(OmegaConf.to_yaml(best))
    sweep_log = logging.getLogger("downsample_study")  # Hydra's logging config may hold it
    sweep_log.addHandler(caplog.handler)
    try:
        found = tune(["downsample=maxpool"], "downsample=maxpool", LrSearch(trials=1), not_run,
                     not_run, tmp_path, 0)
    finally:
        sweep_log.removeHandler(caplog.handler)
    assert found.lr == 0.002 and found.optuna == version(recorded)
    note = (f"tuning downsample=maxpool: {folder / 'best.yaml'} was found on Optuna "
            f"{OTHER_OPTUNA}, this is {optuna_version()}, whose sampler may propose other rates; "
            f"its rate is used as found")
    assert (note in caplog.text) is noted and ("found on Optuna" in caplog.text) is noted


@pytest.mark.parametrize(("recorded", "refused"), [
    ([None], False),  # trials recorded before the version was
    (["this", "this"], False),
    (["this", OTHER_OPTUNA], True),  # one trial of another version is enough
])
def test_an_unfinished_study_goes_on_only_on_the_optuna_version_its_trials_ran_on(
        recorded, refused, tmp_path):
    folder = tmp_path / variant_folder("downsample=maxpool")
    for number, recorded_version in enumerate(recorded):
        versions = {} if recorded_version is None else {"optuna": version(recorded_version)}
        (folder / f"trial{number}").mkdir(parents=True)
        write_results(folder / f"trial{number}", Results(
            Status.completed, {"optimizer": {"lr": 0.01}}, provenance=Provenance(
                versions=versions)))
    launched = []

    def launch(jobs, first_index):
        launched.extend(jobs)
        return [Returned(0.5) for _ in jobs]

    def go_on():
        return tune(["downsample=maxpool"], "downsample=maxpool", LrSearch(trials=2), launch,
                    not_run, tmp_path, 0)

    if refused:
        with pytest.raises(UserError) as err:
            go_on()
        assert str(err.value) == (
            f"tuning downsample=maxpool: its trials in {folder} ran on Optuna {OTHER_OPTUNA}, "
            f"this is {optuna_version()}, whose sampler may propose other rates from "
            f"lr.sampler_seed 0; finish the study with optuna=={OTHER_OPTUNA}, or delete "
            f"{folder} to run it again")
        assert not launched and not (folder / "best.yaml").exists()
        return
    assert go_on().optuna == optuna_version() and len(launched) == 2
    assert OmegaConf.load(folder / "best.yaml").optuna == optuna_version()


@pytest.mark.parametrize(("extra", "reason"), [
    (["mode=summary"], "mode=summary trains nothing"),
    (["trainer.fast_dev_run=true"], "smoke tests (trainer.fast_dev_run) run alone"),
])
def test_what_trains_nothing_to_report_is_not_tuned(extra, reason, quick, tmp_path, capsys):
    run = launch(["-m", *quick, *TUNED, *extra, "downsample=maxpool,stride2",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 0 and f"tuning: off, {reason}" in run.output
    assert not (tmp_path / "sweep" / "tuning").exists()


@pytest.mark.parametrize(("seeds", "trial_seed", "shown"), [
    (["seed=range(10)"], 3, "(0-9)"),
    (["seed=5,7"], 7, "(5, 7)"),
    ([], 0, "(0)"),  # the config's own seed
])
def test_the_trials_seed_is_none_of_the_test_seeds(seeds, trial_seed, shown, quick, tmp_path,
                                                   capsys):
    run = launch(["-m", *quick, *TUNED, *seeds, f"hydra.sweeper.lr.seed={trial_seed}",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert f"error: hydra.sweeper.lr.seed: {trial_seed} is one of the test seeds {shown}; " \
           f"the trials need a seed of their own" in run.output
    assert not (tmp_path / "sweep" / "tuning").exists()


def test_the_rate_the_sweeper_tunes_is_not_swept_too(quick, tmp_path, capsys):
    # each variant would tune to the same rate, and train the same jobs
    args = ["-m", *quick, *TUNED, "optimizer.lr=0.01,0.02", "hydra.sweep.dir=sweep"]
    run = launch(args, capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert "error: optimizer.lr=0.01,0.02: hydra/sweeper=tuned tunes optimizer.lr for each " \
           "variant; leave it out, or set hydra.sweeper.lr.trials=0" in run.output
    assert not (tmp_path / "sweep" / "tuning").exists()
    untuned = launch([*args, "hydra.sweeper.lr.trials=0"], capsys)  # at the rates given
    assert untuned.exit_code == 0
    assert "sweep sweep: 2 jobs with results, 2 completed, 0 failed\n" in untuned.output
    assert describe(read_progress(tmp_path / "sweep"))[1:] == [
        "jobs: 2 of 2 finished (2 completed); 0 running now", "done: every planned job finished"]


@pytest.mark.parametrize(("sweeper", "rate", "instead"), [
    # the old preset's interval, now hydra.sweeper.lr.low and high
    (["hydra/sweeper=lr_search"], "optimizer.lr=interval(1e-3,1e-1)",
     " (hydra.sweeper.lr.low and lr.high bound its search)"),
    (["hydra/sweeper=tuned", "hydra.sweeper.tune_only=true"], "optimizer.lr=0.01",
     " (hydra.sweeper.lr.low and lr.high bound its search)"),
    (["hydra/sweeper=tuned"], "optimizer.lr=0.01",
     ", or set hydra.sweeper.lr.trials=0 to train at the rates given"),
])
def test_a_rate_given_to_a_tuning_sweep_is_refused_saying_what_bounds_the_search(
        sweeper, rate, instead, quick, tmp_path, capsys):
    run = launch(["-m", *quick, *sweeper, *TUNED[1:], rate, "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert (f"error: {rate}: {sweeper[0]} tunes optimizer.lr for each variant; leave it "
            f"out{instead}\n") in run.output
    assert not (tmp_path / "sweep" / "tuning").exists()


@pytest.mark.slow
def test_each_variant_trains_its_seeds_at_the_rate_its_own_trials_found_best(quick, tmp_path,
                                                                           capsys):
    run = launch(["-m", *quick, *TUNED, "downsample=maxpool,stride2", "seed=0,1",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 0, run.output[-3000:]
    assert "4 completed, 0 failed; and 6 learning-rate trials under tuning/, 6 completed" in (
        run.output)
    sweep = tmp_path / "sweep"
    studies = sorted((sweep / "tuning").glob("*/best.yaml"))
    assert len(studies) == 2
    best = {}
    for path in studies:
        study = OmegaConf.to_container(OmegaConf.load(path))
        trials = [json.loads((t / "results.json").read_text())
                  for t in sorted(path.parent.glob("trial*"))]
        assert len(trials) == len(study["trials"]) == 3
        assert {t["config"]["seed"] for t in trials} == {100}  # none of the test seeds
        by_lr = {t["config"]["optimizer"]["lr"]: t["val"]["acc_top1"] for t in trials}
        assert all(1e-3 <= lr <= 3e-2 for lr in by_lr)
        assert study["lr"] == max(by_lr, key=by_lr.get) and study["value"] == max(by_lr.values())
        best[trials[0]["config"]["downsample"]["name"]] = study["lr"]
    for line in ("learning-rate trials 2 of 6, test jobs 0 of 4 finished",  # each job's end
                 "learning-rate trials 6 of 6, test jobs 4 of 4 finished, 0 running\n"):
        assert f"sweep progress: {line}" in run.output
    assert describe(read_progress(sweep))[1:] == [
        "learning-rate studies: 2 of 2 with their best rate (tuning/*/best.yaml)",
        "learning-rate trials: 6 of 6 finished (6 completed); 0 running now",
        "test jobs: 4 of 4 finished (4 completed); 0 running now",
        "done: every planned job finished"]
    tests = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert len(results_under(sweep)) == 4 + 6  # the trials are under tuning/
    assert sorted((r["config"]["downsample"]["name"], r["config"]["seed"]) for r in tests) == [
        ("maxpool", 0), ("maxpool", 1), ("stride2", 0), ("stride2", 1)]
    for r in tests:
        assert r["config"]["optimizer"]["lr"] == best[r["config"]["downsample"]["name"]]
        assert r["config"]["tuned"] == ["optimizer.lr"] and r["pack"]["seeds"] == [0, 1]

    # the report: the rate as the variant's, one comparison across different rates
    report = write_report(sweep, use_wandb=False)
    assert [j.status for j in report.jobs] == ["completed"] * 4
    [comparison] = report.comparisons
    assert comparison.what == "stride2 − maxpool" and comparison.test == "paired"
    text = (sweep / "report.md").read_text()
    assert "lr (tuned)" in text and f"{best['stride2']:.3g}" in text
    assert "## Learning-rate tuning" in text and (sweep / "lr_tuning.png").is_file()
    assert "share, each trial 1 epoch;" in text  # the trials' own trainer.max_epochs
    for op in ("maxpool", "stride2"):  # each study named by what tells it from the other
        assert f"| {op} | 3 (3 completed) | " in text

    # a re-run reads each variant's best.yaml and trains nothing again
    before = {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")}
    again = launch(["-m", *quick, *TUNED, "downsample=maxpool,stride2", "seed=0,1",
                    "hydra.sweep.dir=sweep"], capsys)
    assert again.exit_code == 0 and again.output.count("best.yaml") == 2
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")} == before
    other = launch(["-m", *quick, *TUNED, "downsample=maxpool,stride2", "seed=0,1",
                    "hydra.sweep.dir=sweep", "hydra.sweeper.lr.trials=4"], capsys)
    assert other.exit_code != 0 and "Traceback" not in other.output
    assert "the outcome of another search (lr.trials: 3 there, 4 here)" in other.output

    # its record is what the report reads, and what the same command needs to go on elsewhere
    copy_record(sweep, tmp_path / "record")
    write_report(tmp_path / "record", use_wandb=False, draw_plots=False)
    for name in ("results.csv", "comparisons.csv"):
        assert (tmp_path / "record" / name).read_text() == (sweep / name).read_text()
    copy_record(tmp_path / "record", tmp_path / "elsewhere")
    elsewhere = launch(["-m", *quick, *TUNED, "downsample=maxpool,stride2", "seed=0,1",
                        "hydra.sweep.dir=elsewhere"], capsys)
    assert elsewhere.exit_code == 0 and elsewhere.output.count("best.yaml") == 2
    assert "4 completed, 0 failed" in elsewhere.output
    assert not list((tmp_path / "elsewhere").rglob("*.ckpt"))  # nothing trained again


@pytest.mark.slow
def test_a_parallel_sweep_stopped_while_tuning_keeps_no_best_rate_and_the_rerun_finishes_it(
        quick, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *quick, *TUNED, "hydra.sweeper.lr.trials=4", "hydra.sweeper.lr.at_once=2",
            "hydra.sweeper.lr.epochs=20",
            "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1",
            f"hydra.sweep.dir={sweep}"]
    with open(tmp_path / "sweep.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "downsample_study", *args], cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while len(list(sweep.glob("tuning/*/trial*/epochs.csv"))) < 2:  # two trials training
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=300) == 128 + signal.SIGTERM
    assert "Traceback" not in (tmp_path / "sweep.log").read_text()
    [study] = (sweep / "tuning").iterdir()
    assert not (study / "best.yaml").exists()  # a stopped study is not a result
    assert sorted(r["status"] for r in results_under(sweep)) == ["interrupted"] * 2
    assert not list(sweep.glob("*/results.json"))  # no test seed started
    progress = describe(read_progress(sweep))
    assert progress[1:4] == [
        "learning-rate studies: 0 of 1 with their best rate (tuning/*/best.yaml)",
        "learning-rate trials: 0 of 4 finished (0 completed, 2 interrupted); 0 running now",
        "test jobs: 0 of 2 finished (0 completed); 0 running now"]
    assert progress[4].startswith("no job is running now: ")

    again = cli(args, tmp_path)  # the same command (a process of its own: it forks workers)
    assert again.returncode == 0, (again.stdout + again.stderr)[-2000:]
    assert len(OmegaConf.load(study / "best.yaml").trials) == 4
    assert len(list(sweep.glob("*/results.json"))) == 2  # the test seeds


@pytest.mark.slow
def test_a_studys_rate_is_not_reused_for_a_configuration_its_trials_did_not_train(
        quick, tmp_path, capsys):
    # a study's folder is named after its variant's overrides: an edited YAML keeps the name
    experiment = tmp_path / "conf" / "experiment" / "mine.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text("# @package _global_\noptimizer:\n  weight_decay: 0.0\n")
    args = ["-m", "--config-dir", str(tmp_path / "conf"), "experiment=mine", *quick, *TUNED,
            "hydra.sweeper.lr.trials=2", "hydra.sweep.dir=sweep"]
    assert launch(args).exit_code == 0
    [best] = Path("sweep").glob("tuning/*/best.yaml")  # as the sweep names it, from its dir
    again = launch(args, capsys)
    assert again.exit_code == 0 and f"from {best}" in again.output
    recorded = {p: p.read_bytes() for p in (tmp_path / "sweep").rglob("results.json")}
    experiment.write_text(experiment.read_text().replace("0.0", "0.01"))
    other = launch(args, capsys)
    assert other.exit_code != 0 and "Traceback" not in other.output
    assert f"{best}: found by trials of another configuration (optimizer.weight_decay: 0.0 " \
           f"there, 0.01 here); delete {best.parent} to tune this one, or sweep into another " \
           f"folder" in other.output
    assert "Launching" not in other.output  # no seed trained at that rate
    assert {p: p.read_bytes() for p in recorded} == recorded
    # without its best.yaml, the trials there are still another configuration's, not these
    (tmp_path / best).unlink()
    again = launch(args, capsys)
    assert again.exit_code != 0 and "Traceback" not in again.output
    assert "none of its 2 trials completed" in again.output
    assert not (tmp_path / best).exists()
    assert {p: p.read_bytes() for p in recorded} == recorded


@pytest.mark.slow
def test_a_trial_another_sweep_is_running_is_waited_for_not_failed(quick, tmp_path):
    args = ["-m", *quick, *TUNED, "hydra.sweeper.lr.trials=2", "hydra.sweep.dir=sweep"]
    assert launch(args).exit_code == 0
    [study] = (tmp_path / "sweep" / "tuning").iterdir()
    found = OmegaConf.load(study / "best.yaml")
    assert None not in [t.value for t in found.trials]
    # as a second sweep into the folder finds it: the first one still training trial 1
    (study / "best.yaml").unlink()
    trained = (study / "trial1" / "results.json").read_bytes()
    (study / "trial1" / "results.json").unlink()
    with open(study / "trial1" / ".lock", "a") as lock, \
            open(tmp_path / "second.log", "w") as log:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = subprocess.Popen([sys.executable, "-m", "downsample_study", *args],
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while "another process is running: trial1" not in (tmp_path / "second.log").read_text():
            assert second.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        (study / "trial1" / "results.json").write_bytes(trained)  # the first one ends
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert OmegaConf.load(study / "best.yaml") == found  # its trial counted, not failed
