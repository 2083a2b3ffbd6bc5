"""How far a sweep has got (sweeps/progress.py), read from its folder: planned from
multirun.yaml, finished from results.json, running from the job locks, and the pace of the
current run's last hour. test_tuning.py reads a real tuned sweep's, finished and stopped."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from support import summarize_sweep

from downsample_study.results import Results, Status, write_epoch_row, write_results
from downsample_study.runtime.locks import job_lock
from downsample_study.sweeps.progress import (
    MIN_PACE_S,
    PACE_WINDOW_S,
    Stage,
    describe,
    main,
    one_line,
    pace,
    read_progress,
)
from downsample_study.sweeps.running import JobEpochs, job_epochs, seconds_left, where
from downsample_study.sweeps.summary import summarize

TUNED = "hydra_plugins.downsample_study_sweeper.tuned_sweeper.TunedSweeper"
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
STARTED = 1_800_000_000.0  # the run's start: multirun.yaml's time
MAXPOOL, STRIDE2 = (f"tuning/dataset=mnist,downsample={op}" for op in ("maxpool", "stride2"))


def write_sweep(sweep: Path, target: str = TUNED, task: tuple[str, ...] = ("dataset=mnist",),
                params: dict | None = None, **top) -> None:
    """multirun.yaml of a sweep of maxpool and stride2 × 3 seeds (params and the command's
    overrides), tuned by 2 trials each."""
    params = {"downsample": "maxpool,stride2", "seed": "range(3)"} if params is None else params
    sweep.mkdir(parents=True, exist_ok=True)
    config = {"mode": "train", "trainer": {"max_epochs": 3}, **top, "hydra": {
        "sweeper": {"_target_": target, "lr": {"trials": 2},
                    "params": params},
        "overrides": {"task": list(task)},
        "job": {"config": {"override_dirname": {"exclude_keys": ["paths.data_dir"]}}}}}
    OmegaConf.save(OmegaConf.create(config), sweep / "multirun.yaml")
    os.utime(sweep / "multirun.yaml", (STARTED, STARTED))


def write_job(folder: Path, status: Status, at: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_results(folder, Results(status, {}))
    os.utime(path, (at, at))


def write_trained(folder: Path, epochs: int, seconds: list[float]) -> None:
    """A running job's config (``trainer.max_epochs``) and its ``epochs.csv`` rows so far."""
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"trainer": {"max_epochs": epochs}}),
                   folder / ".hydra" / "config.yaml")
    for epoch, elapsed in enumerate(seconds, start=1):
        write_epoch_row(folder, {"epoch": epoch, "step": 10 * epoch, "seconds": elapsed})


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Tuning half done (maxpool's study over, stride2's second trial running), no test job:
    three trials finished in this run, 10, 20 and 30 minutes in."""
    sweep = tmp_path / "sweep"
    write_sweep(sweep)
    write_job(sweep / MAXPOOL / "trial0", Status.completed, STARTED - 7200)  # an earlier run
    write_job(sweep / MAXPOOL / "trial1", Status.completed, STARTED + 600)
    (sweep / MAXPOOL / "best.yaml").write_text("lr: 0.001\nvalue: 0.9\ntrials: []\n")
    write_job(sweep / STRIDE2 / "trial0", Status.failed, STARTED + 1200)
    (sweep / STRIDE2 / "trial1" / ".hydra").mkdir(parents=True)  # started, as Hydra starts it
    (sweep / STRIDE2 / "trial1" / ".hydra" / "overrides.yaml").write_text("- seed=100\n")
    write_trained(sweep / STRIDE2 / "trial1", epochs=3, seconds=[40.0])  # 1 epoch of 3
    write_job(sweep / "dataset=mnist,downsample=maxpool,seed=9", Status.interrupted,
              STARTED + 1800)
    return sweep


def test_the_plan_is_the_sweepers_and_the_counts_are_the_folders(sweep):
    with job_lock(sweep / STRIDE2 / "trial1"):
        progress = read_progress(sweep)
        lines = describe(progress, now=STARTED + 1800)
    assert progress.sweeper == "tuned" and progress.studies == (1, 2)
    assert lines[1:] == [
        "learning-rate studies: 1 of 2 with their best rate (tuning/*/best.yaml)",
        "learning-rate trials: 3 of 4 finished (2 completed, 1 failed); 1 running now, at "
        "epoch 1 of 3",
        "test jobs: 0 of 6 finished (0 completed, 1 interrupted); 0 running now",
        # two of the three finished in this run's 30 minutes: 4 an hour, 1 left; the running
        # one has 2 epochs left at 40 s
        "learning-rate trials: 4.0 an hour lately; the 1 left take about 15 min at that pace; "
        "at the running jobs' speed per epoch, the 1 left take about 1 min, training alone",
    ]


@pytest.mark.parametrize(("now", "pace_part"), [
    (STARTED + 1800, "; learning-rate trials: 4.0 an hour lately; the 1 left take about 15 min "
                     "at that pace"),
    (STARTED + 100, ""),  # no pace yet: the line has none
])
def test_a_sweep_logs_its_progress_in_a_line(sweep, now, pace_part):
    assert one_line(read_progress(sweep), now=now) == (
        "sweep progress: learning-rate trials 3 of 4, test jobs 0 of 6 finished, 0 running"
        + pace_part)


def test_a_stopped_sweep_says_so_and_a_finished_one_says_done(sweep):
    lines = describe(read_progress(sweep), now=STARTED + 1800)
    assert lines[-2].startswith("no job is running now; the last job finished ")
    assert "its own command goes on with it" in lines[-2]
    write_job(sweep / STRIDE2 / "trial1", Status.completed, STARTED + 1900)
    for seed in range(3):
        for op in ("maxpool", "stride2"):
            folder = sweep / f"dataset=mnist,downsample={op},seed={seed}"
            if not folder.exists():
                write_job(folder, Status.completed, STARTED + 2000)
    (sweep / "dataset=mnist,downsample=maxpool,seed=9" / "results.json").unlink()
    lines = describe(read_progress(sweep), now=STARTED + 2000)
    assert "test jobs: 6 of 6 finished (6 completed); 0 running now" in lines
    assert lines[-1] == "done: every planned job finished"


@pytest.mark.parametrize(("tune_only", "lines", "summary"), [
    (True, ["learning-rate trials: 4 of 4 finished (4 completed); 0 running now",
            "done: every planned job finished"],
     "4 learning-rate trials under tuning/, 4 completed; 2 studies ended with a best rate\n"),
    (False, ["learning-rate trials: 4 of 4 finished (4 completed); 0 running now",
             "test jobs: 0 of 6 finished (0 completed); 0 running now"],
     "0 jobs with results, 0 completed, 0 failed; and 4 learning-rate trials under tuning/, 4 "
     "completed\n"),
], ids=["tune_only", "tuned-then-seeds"])
def test_a_sweep_of_the_studies_alone_plans_no_test_job(tune_only, lines, summary, tmp_path,
                                                        caplog):
    # hydra/sweeper=lr_search (tune_only): its studies over, it is done; tuned's goes on
    sweep = tmp_path / "sweep"
    write_sweep(sweep)
    config = OmegaConf.load(sweep / "multirun.yaml")
    config.hydra.sweeper.tune_only = tune_only
    OmegaConf.save(config, sweep / "multirun.yaml")
    for study in (MAXPOOL, STRIDE2):
        for trial in ("trial0", "trial1"):
            write_job(sweep / study / trial, Status.completed, STARTED + 600)
        (sweep / study / "best.yaml").write_text("lr: 0.001\nvalue: 0.9\ntrials: []\n")
    progress = read_progress(sweep)
    assert describe(progress, now=STARTED + 1200)[1:len(lines) + 2] == [
        "learning-rate studies: 2 of 2 with their best rate (tuning/*/best.yaml)", *lines]
    assert f"sweep {sweep}: {summary}" in summarize_sweep(sweep, caplog)[1]


@pytest.mark.parametrize(("now", "expected"), [
    (STARTED + MIN_PACE_S - 1, None),  # the run is too young to tell
    (STARTED + 1800, 2 / 1800),  # since the run started
    (STARTED + PACE_WINDOW_S + 1200, 1 / PACE_WINDOW_S),  # the last hour: trial0 of stride2
    (STARTED + 3 * PACE_WINDOW_S, None),  # nothing finished in the last hour
])
def test_the_pace_is_the_last_hour_of_this_run(sweep, now, expected):
    [trials, _] = read_progress(sweep).stages
    assert pace(trials, STARTED, now) == pytest.approx(expected) if expected else (
        pace(trials, STARTED, now) is None)


@pytest.mark.parametrize(("pack_minutes", "bursts", "expected_per_hour"), [
    (10, 30, 60.0),  # the last hour holds 12 bursts, more than two rounds: the last hour
    # an hour holds one burst or two (here 10 results: 10 an hour); the last two rounds,
    # from the finish before them (the last of burst 4) to now, hold 20 at 7.5 an hour
    (80, 8, 20 / (8 * 2400 + 60 - (4 * 2400 + 4)) * 3600),
])
def test_the_pace_of_packs_spans_two_rounds_when_an_hour_holds_fewer(pack_minutes, bursts,
                                                                      expected_per_hour):
    """Two packs of 5 side by side, finishing by turns: a burst of 5 results every half pack,
    the members' results seconds apart."""
    half = pack_minutes * 30
    stage = Stage("test jobs", 400, running=[JobEpochs()] * 10, finished_at=[
        STARTED + k * half + member for k in range(1, bursts + 1) for member in range(5)])
    now = STARTED + bursts * half + 60  # a minute after the last burst
    assert pace(stage, STARTED, now) * 3600 == pytest.approx(expected_per_hour)


@pytest.mark.parametrize(("target", "task", "params", "top", "planned"), [
    (TUNED, ("dataset=mnist",), None, {"mode": "summary"}, "jobs: 1 of 6 finished"),
    (TUNED, ("dataset=mnist",), None, {"trainer": {"fast_dev_run": True}}, "jobs: 1 of 6"),
    (BASIC, ("dataset=mnist,cifar10",), None, {}, "jobs: 1 of 12 finished"),
    (BASIC, ("seed=0,1",), {}, {}, "jobs: 1 of 2 finished"),  # all on the command line
    ("hydra_plugins.other_sweeper.AskTellSweeper", (), None, {},
     "jobs: 1 finished"),  # a sweeper that plans as it goes
])
def test_a_sweep_that_tunes_nothing_has_jobs_alone(tmp_path, target, task, params, top,
                                                    planned):
    write_sweep(tmp_path, target, task, params, **top)
    write_job(tmp_path / "seed=0", Status.completed, STARTED + 10)
    progress = read_progress(tmp_path)
    assert progress.studies is None and len(progress.stages) == 1
    assert describe(progress, now=STARTED + 20)[1].startswith(planned)


@pytest.mark.parametrize(("multirun_yaml", "message"), [
    (None, "no such folder"),
    (False, "a file, not a folder"),
    ("", "no multirun.yaml and no job folder, so not a sweep folder"),
    ("a: [\n", "unreadable (ParserError: "),
    ("a: 1\n", "no hydra.sweeper._target_"),
])
def test_what_is_not_a_sweep_folder_is_refused_in_a_line(tmp_path, capsys, multirun_yaml,
                                                         message):
    if multirun_yaml is False:
        (tmp_path / "sweep").write_text("a: 1\n")
    elif multirun_yaml is not None:
        (tmp_path / "sweep").mkdir()
        if multirun_yaml:
            (tmp_path / "sweep" / "multirun.yaml").write_text(multirun_yaml)
    assert main([str(tmp_path / "sweep")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {tmp_path / 'sweep'}") and message in err
    assert len(err.splitlines()) == 1


def test_the_command_prints_the_lines(sweep, capsys):
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{sweep} (hydra/sweeper=tuned): this run started ")
    assert "learning-rate trials: 3 of 4 finished" in out


@pytest.mark.parametrize("target", [TUNED, BASIC])
@pytest.mark.parametrize("data_dir", ["/data", "/moved"])  # a key that names no job folder
def test_job_folders_of_an_earlier_sweep_into_the_folder_are_not_counted(target, data_dir,
                                                                          tmp_path, caplog):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, target, task=("dataset=mnist", f"paths.data_dir={data_dir}"),
                params={"downsample": "maxpool", "seed": "range(3)"})
    tuned = ["optimizer.lr=0.002", "tuned=[optimizer.lr]"] if target == TUNED else []
    for seed in (0, 1, 5, 6):  # seeds 5 and 6: another sweep's, with the same folder
        overrides = ["dataset=mnist", "paths.data_dir=/data", "downsample=maxpool",
                     f"seed={seed}", *tuned]
        folder = sweep / f"downsample=maxpool,seed={seed}"
        write_job(folder, Status.completed, STARTED + 60 * seed)
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    progress = read_progress(sweep)
    assert not progress.done  # seed 2 is left
    line = "test jobs" if target == TUNED else "jobs"
    assert f"{line}: 2 of 3 finished (2 completed); 0 running now; 2 job folders not in this " \
           "sweep's plan (another sweep's) not counted" in describe(progress)
    with caplog.at_level(logging.INFO, logger="downsample_study"):
        assert summarize(sweep) == 0  # the earlier sweep's jobs are not this one's
    assert "sweep: 2 jobs with results, 2 completed, 0 failed; 2 job folders not in this " \
           "sweep's plan (another sweep's) not counted" in caplog.text
    assert f"its report (verdicts, plots): python -m downsample_study.report {sweep}" \
        in caplog.text


@pytest.mark.parametrize(("jobs", "expected"), [
    ([JobEpochs(9, 20)] * 5, "at epoch 9 of 20"),
    ([JobEpochs(3, 20), JobEpochs(9, 20), JobEpochs(5, 20)], "at epochs 3-9 of 20"),
    ([JobEpochs(2, 5), JobEpochs(9, 20), JobEpochs(0)], "at epochs 0/?, 2/5, 9/20"),
    ([JobEpochs(0)], "at epoch 0"),  # started, nothing trained or configured yet
])
def test_the_running_jobs_say_where_they_are(jobs, expected):
    assert where(jobs) == expected


@pytest.mark.parametrize(("seconds", "per_epoch"), [
    ([40.0, 70.0, 100.0], 100.0 / 3),
    # resumed after epoch 2: this attempt's one epoch took 50 s, the earlier ones do not count
    ([40.0, 70.0, 50.0], 50.0),
    ([], None),
])
def test_a_running_jobs_speed_is_that_of_its_current_attempt(seconds, per_epoch, tmp_path):
    write_trained(tmp_path, epochs=20, seconds=seconds)
    job = job_epochs(tmp_path)
    assert (job.trained, job.planned) == (len(seconds), 20)
    assert job.per_epoch == (pytest.approx(per_epoch) if per_epoch else None)


@pytest.mark.parametrize(("jobs", "left", "expected"), [
    # two at 10 s an epoch, 15 of 20 left each, then (6 - 2) / 2 = 2 rounds of 200 s
    ([JobEpochs(5, 20, 10.0)] * 2, 6, 150 + 2 * 200),
    # the slower one finishes last; 3 left beyond the two running: 2 rounds of the mean job
    ([JobEpochs(5, 20, 10.0), JobEpochs(10, 20, 30.0)], 5, 300 + 2 * (200 + 600) / 2),
    # one has no epoch yet: at the other's 10 s, 20 epochs to go; then 1 round of 200 s
    ([JobEpochs(5, 20, 10.0), JobEpochs(0, 20)], 4, 200 + 200),
    ([JobEpochs(5, 20, 10.0), JobEpochs(0)], 4, 200 + 200),  # nor its length
    ([JobEpochs(0, 20), JobEpochs(0)], 4, None),  # none has a speed yet
    ([], 4, None),
])
def test_the_time_left_before_a_pace_is_the_running_jobs_speed(jobs, left, expected):
    assert seconds_left(jobs, left) == (pytest.approx(expected) if expected else None)


def test_a_young_run_estimates_from_its_running_jobs(sweep):
    with job_lock(sweep / STRIDE2 / "trial1"):
        lines = describe(read_progress(sweep), now=STARTED + 100)
    # one trial left, the running one: 2 epochs more at 40 s
    assert lines[-1] == ("learning-rate trials: no pace yet (this run started 2 min ago); at "
                         "the running jobs' speed per epoch, the 1 left take about 1 min, "
                         "training alone")


def test_a_sweep_whose_multirun_yaml_is_gone_is_read_from_its_job_folders(tmp_path):
    write_job(tmp_path / "sweep" / "seed=0", Status.completed, STARTED + 10)
    write_job(tmp_path / "sweep" / "seed=1", Status.failed, STARTED + 20)
    lines = describe(read_progress(tmp_path / "sweep"), now=STARTED + 30)
    assert lines[0].startswith(f"{tmp_path / 'sweep'} (hydra/sweeper=unknown: no multirun.yaml)")
    assert lines[1] == "jobs: 2 finished (1 completed, 1 failed); 0 running now"


def test_a_sweep_of_layer_tables_is_not_taken_for_a_stopped_one(quick, tmp_path):
    from support import launch

    assert launch(["-m", *quick, "logger=none", "mode=summary", "seed=0,1",
                   "hydra.sweep.dir=sweep"]).exit_code == 0
    lines = describe(read_progress(tmp_path / "sweep"))
    assert lines[-1] == ("mode=summary: its jobs print their layer tables and record nothing "
                         "to count")
    assert not any("stopped" in line for line in lines)
