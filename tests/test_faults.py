"""Faults around a job: broken checkpoints, two sweeps into one folder, full or unwritable
disks (for a job and for a report), W&B without a network, unreadable results. Nothing is
lost, nothing is trained twice, nothing half-written is presented as complete, and each
fault is one line naming the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from support import Launch, launch, read_wandb_runs, results_under, summarize_sweep
from support.report_sweeps import write_report_sweep

from downsample_study.config.defining import config_differences
from downsample_study.errors import OtherJobError, StorageError
from downsample_study.layout import PLOTS
from downsample_study.report.build import write_report
from downsample_study.report.cli import main as report_main
from downsample_study.results import Results, Status, write_results
from downsample_study.runtime.same_job import completed_results
from downsample_study.training.checkpoints import AtomicCheckpointIO, resume_point


@pytest.fixture
def job(quick) -> list[str]:
    return [*quick, "logger=none", "evaluation.feature_maps.enabled=false",
            "evaluation.shift.enabled=false"]


# --- checkpoints ------------------------------------------------------------------------------


def test_a_save_cut_short_keeps_the_previous_checkpoint_and_leaves_no_temp_file(
    tmp_path, monkeypatch
):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    io.save_checkpoint({"step": 1}, path)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(StorageError, match=r"cannot write .*last\.ckpt: No space left on device"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_broken_last_checkpoint_is_set_aside_and_the_job_resumes_from_the_newest_that_loads(
    job, tmp_path, capsys
):
    assert launch([*job, "trainer.max_epochs=2", "hydra.run.dir=out"]).exit_code == 0
    folder = tmp_path / "out"
    (folder / "results.json").unlink()  # as if the run had died after its last epoch
    last = folder / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated: the disk filled while saving
    run = launch([*job, "trainer.max_epochs=3", "hydra.run.dir=out"], capsys)
    assert run.exit_code == 0
    assert f"checkpoint {last} does not load" in run.output and "last.ckpt.broken" in run.output
    [results] = results_under(folder)
    assert results["status"] == "completed" and results["epochs"] == 3
    assert "best-epoch" in results["resumed_from"]  # the newest checkpoint that loads
    names = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert "last.ckpt.broken" in names and "last.ckpt" in names
    assert not [n for n in names if "-v" in n or n.endswith(".tmp")]  # no orphans beside it


# --- one job, one process -------------------------------------------------------------------


def hold_lock(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process that runs the job in ``folder`` (holds its lock) for ``seconds``, or
    until it is killed."""
    code = (f"import pathlib, time; from downsample_study.runtime.locks import job_lock\n"
            f"with job_lock(pathlib.Path({str(folder)!r})):\n"
            f"    print('locked', flush=True); time.sleep({seconds})\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_job_another_process_is_running_is_not_run_twice(job, tmp_path, capsys):
    folder = tmp_path / "out"
    holder = hold_lock(folder, 30)
    try:
        run = launch([*job, "hydra.run.dir=out"], capsys)
    finally:
        holder.kill()
    assert run.exit_code == 1
    assert f"another process (pid {holder.pid}) is running this job" in run.output
    assert not (folder / "checkpoints").exists() and not results_under(folder)


@pytest.mark.slow
def test_a_second_sweep_into_the_folder_skips_what_the_first_runs_and_waits_for_it(
    job, tmp_path
):
    args = ["-m", *job, "downsample=maxpool,avgpool", "hydra.sweep.dir=sweep"]
    assert launch(args).exit_code == 0
    [avgpool] = (tmp_path / "sweep").glob("*downsample=avgpool*")
    (avgpool / "results.json").unlink()  # to be run again ...
    for checkpoint in (avgpool / "checkpoints").iterdir():
        checkpoint.unlink()
    # ... by the "first sweep", busy with it until the second one has skipped it and waits
    # for it: then it lets go (it wrote no results, as a job killed before its first epoch)
    holder = hold_lock(avgpool, 120)
    second = subprocess.Popen([sys.executable, "-m", "downsample_study", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in second.stdout:
            lines.append(line)
            if "waiting for 1 job(s) that another process is running" in line:
                holder.kill()
        run = Launch(second.wait(timeout=60), "".join(lines))
    finally:
        holder.kill()
        second.kill()
    assert "skipped here (the summary waits for it)" in run.output
    assert "waiting for 1 job(s) that another process is running" in run.output
    assert not list((avgpool / "checkpoints").iterdir())  # not trained by this sweep
    # the other process wrote no results: the summary says so, and the status is not 0
    assert run.exit_code == 1 and "1 completed, 0 failed; 1 without: 1 not run" in run.output


@pytest.mark.parametrize("sweeper", [None, "basic", "packed"])
def test_a_folder_holding_another_configurations_run_is_kept_and_not_taken_as_this_jobs(
    sweeper, job, tmp_path, capsys
):
    # a job's folder is named after its overrides: an edited YAML keeps the name
    experiment = tmp_path / "conf" / "experiment" / "mine.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text("# @package _global_\noptimizer:\n  lr: 0.002\n")
    where = (["hydra.run.dir=out"] if sweeper is None else
             ["hydra.sweep.dir=out", "seed=0,1", f"hydra/sweeper={sweeper}"])
    args = [*(["-m"] if sweeper else []), "--config-dir", str(tmp_path / "conf"),
            "experiment=mine", *job, *where]
    assert launch(args).exit_code == 0
    recorded = {p: p.read_bytes() for p in (tmp_path / "out").rglob("results.json")}
    assert len(recorded) == (1 if sweeper is None else 2)
    # how, not what, a job computes: still the same jobs, skipped
    experiment.write_text(experiment.read_text() + "dataset:\n  eval_batch_size: 64\n")
    run = launch(args, capsys)
    assert run.exit_code == 0 and "completed by an earlier run, skipped" in run.output
    experiment.write_text(experiment.read_text().replace("0.002", "0.004"))
    run = launch(args, capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert "holds the results of a run of another configuration (optimizer.lr: 0.002 there, " \
           "0.004 here)" in run.output
    if sweeper is not None:
        assert "0 completed, 0 failed, 2 of another configuration" in run.output
        write_report(tmp_path / "out", use_wandb=False, draw_plots=False)
        assert "2 jobs: 0 completed, 0 failed, 0 not run, 2 of another configuration; 0 " \
               "variants" in (tmp_path / "out" / "report.md").read_text()
    assert {p: p.read_bytes() for p in recorded} == recorded  # kept, not replaced
    for path in recorded:  # as jobs killed after a checkpoint, before their results
        path.unlink()
    run = launch(args, capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert "checkpoints: saved by a run of another configuration (optimizer.lr: 0.002 " \
           "there, 0.004 here); delete it to train this job from the start" in run.output
    if sweeper == "packed":  # a pack's member resumes alone from its own checkpoint
        run = launch([*args, "hydra/sweeper=basic"], capsys)
        assert run.exit_code == 1 and run.output.count("saved by a run of another configu") == 2


def test_a_job_asked_to_train_longer_says_how_and_then_goes_on_from_its_checkpoint(
    job, tmp_path, capsys
):
    assert launch([*job, "hydra.run.dir=out"]).exit_code == 0  # trainer.max_epochs=1
    longer = [*job, "trainer.max_epochs=2", "hydra.run.dir=out"]
    run = launch(longer, capsys)
    assert run.exit_code == 1
    assert "holds the results of this job trained for another length (trainer.max_epochs: 1 " \
           "there, 2 here); delete its results.json to train it on from its last checkpoint" \
           in run.output
    (tmp_path / "out" / "results.json").unlink()
    assert launch(longer).exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["epochs"] == 2 and results["resumed_from"].endswith("last.ckpt")


@pytest.mark.parametrize("status", ["completed", "interrupted", "failed"])
def test_only_a_completed_job_is_held_to_its_configuration(status, tmp_path):
    write_results(tmp_path, Results(status=Status(status), config={
        "optimizer": {"lr": 0.001}, "trainer": {"max_epochs": 2}}))
    longer = {"optimizer": {"lr": 0.001}, "trainer": {"max_epochs": 3}}
    other = {"optimizer": {"lr": 0.01}, "trainer": {"max_epochs": 2}}
    if status != "completed":  # run again, from its checkpoint, which SameJob checks
        completed_results(tmp_path, longer)
        completed_results(tmp_path, other)
        return
    with pytest.raises(OtherJobError, match="trained for another length"):
        completed_results(tmp_path, longer)
    with pytest.raises(OtherJobError, match=r"another configuration \(optimizer.lr: 0.001 there"):
        completed_results(tmp_path, other)


@pytest.mark.parametrize(
    ("earlier", "current", "differences"),
    [
        ({"optimizer": {"name": "adam", "lr": 0.001}}, {"optimizer": {"name": "adam", "lr": 0.01}},
         ["optimizer.lr: 0.001 there, 0.01 here"]),
        ({"seed": 0, "downsample": {"name": "maxpool"}}, {"seed": 1, "downsample": {"name": "aps"}},
         ["downsample.name: 'maxpool' there, 'aps' here", "seed: 0 there, 1 here"]),
        # where the files are, how the run is logged, on which device: the same job
        ({"paths": {"data_dir": "/a"}, "logger": {"name": "wandb"}, "trainer": {"devices": 1}},
         {"paths": {"data_dir": "/b"}, "logger": {"name": "csv"}, "trainer": {"devices": 2}}, []),
        ({"dataset": {"name": "mnist", "eval_batch_size": 1000}},
         {"dataset": {"name": "mnist", "eval_batch_size": 64}}, []),
        # a key a later version added is not compared; an unset Trainer argument is
        ({"model": {"name": "lenet5"}}, {"model": {"name": "lenet5", "width": 1.0}}, []),
        ({"trainer": {"max_epochs": 20}}, {"trainer": {"max_epochs": None}},
         ["trainer.max_epochs: 20 there, unset here"]),
        ({}, {"seed": 3, "trainer": {"max_epochs": 5}}, []),  # a record without its config
    ],
)
def test_the_keys_that_make_two_runs_different_jobs(earlier, current, differences):
    assert config_differences(earlier, current) == differences


# --- disks --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB filesystem (a tmpfs; mounting one needs root): smaller than a checkpoint."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_the_sweep_goes_on_to_its_summary(
    job, small_disk, tmp_path, capsys
):
    run = launch(["-m", *job, "downsample=maxpool,avgpool", f"hydra.sweep.dir={small_disk}"],
                 capsys)
    assert run.exit_code == 1
    assert "No space left on device" in run.output and "Traceback" not in run.output
    assert "sweep" in run.output and "2 failed" in run.output  # both jobs, then the summary
    assert not list(small_disk.rglob("*.tmp"))  # nothing half-written left
    for results in results_under(small_disk):  # where they fitted: failed, never complete
        assert results["status"] == "failed" and "cannot write" in results["error"]


def test_a_report_on_a_full_disk_is_one_line_and_leaves_no_file_half_written(small_disk,
                                                                           capsys):
    sweep = write_report_sweep(small_disk / "sweep")  # fits; its report's plots do not
    assert report_main([str(sweep), "--no-wandb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {sweep}/") and "No space left on device" in err
    assert "Traceback" not in err
    assert not list(small_disk.rglob("*.tmp"))
    written = list(sweep.glob("*.png"))
    assert len(written) < len(PLOTS)
    for png in written:  # those that fitted are whole
        with Image.open(png) as image:
            image.verify()
    assert not (sweep / "report.md").exists()  # no report that lists plots it lacks


def _stop(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(("command", "stopped_in", "message"), [
    ("report", "downsample_study.report.build.write_csv",
     "stopped: no report.md written (it is the last file written); run the command again"),
    ("record", "downsample_study.sweeps.record.atomic_write",
     "holds part of the record, each file whole; run the command again to finish it"),
    ("progress", "downsample_study.sweeps.progress.read_progress", "stopped: nothing read"),
])
def test_ctrl_c_in_a_side_command_is_one_line_and_exit_130(command, stopped_in, message,
                                                            tmp_path, monkeypatch, capsys):
    from downsample_study.sweeps.progress import main as progress_main
    from downsample_study.sweeps.record import main as record_main

    sweep = write_report_sweep(tmp_path / "sweep")
    (sweep / "report.md").write_text("# an earlier report, of fewer jobs\n")
    monkeypatch.setattr(stopped_in, _stop)
    main, args = {"report": (report_main, ["--no-wandb", "--no-plots"]),
                  "record": (record_main, [str(tmp_path / "record")]),
                  "progress": (progress_main, [])}[command]
    assert main([str(sweep), *args]) == 130
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    # a report stopped after its build: no report.md beside the new files, not the old one
    assert (sweep / "report.md").exists() == (command != "report")


@pytest.mark.parametrize("inside", ["/inside", ""])  # a folder in a file, a file for the folder
@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir", "paths.cache_dir"])
def test_a_folder_that_cannot_be_written_is_one_line_naming_it(key, inside, job, tmp_path,
                                                               capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    extra = {"hydra.run.dir": [], "hydra.sweep.dir": ["-m"], "paths.cache_dir": [
        "hydra.run.dir=out"]}[key]
    run = launch([*extra, *job, f"{key}={blocker}{inside}"], capsys)
    assert run.exit_code == 1
    assert f"cannot write {blocker}{inside}" in run.output and "Traceback" not in run.output


# --- W&B -----------------------------------------------------------------------------------


def test_without_a_reachable_server_wandb_goes_offline_with_a_notice(job, tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # credentials: W&B would go online
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    run = launch([*job, "logger=wandb", "logger.wandb.init_timeout=3", "hydra.run.dir=out"], capsys)
    assert run.exit_code == 0
    assert "W&B: cannot reach the server" in run.output and "wandb sync" in run.output
    [offline] = read_wandb_runs(tmp_path / "out" / "wandb")
    assert offline.exit_code == 0 and offline.summary["test/acc_top1"] > 0.5


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("WANDB_MODE", "bogus", "mode='bogus' (from WANDB_MODE in the environment): Input should "
                            "be 'online', 'offline'"),
    ("WANDB_CONSOLE", "bogus", "console='bogus' (from WANDB_CONSOLE in the environment)"),
])
def test_a_wandb_setting_it_refuses_is_one_line_naming_the_variable(
        variable, value, message, job, tmp_path, monkeypatch, capsys):
    import wandb

    monkeypatch.setenv(variable, value)
    wandb.teardown()  # wandb reads some variables once per process: here, read them again
    try:
        run = launch([*job, "logger=wandb", "hydra.run.dir=out"], capsys)
    finally:
        monkeypatch.undo()
        wandb.teardown()  # and not keep this one for the tests after it
    assert run.exit_code == 1
    [line] = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert line.startswith("error: W&B refused its settings: ") and message in line
    assert "Traceback" not in run.output
    assert not list(tmp_path.rglob("*.ckpt"))  # refused before training


def test_with_credentials_a_refused_setting_is_not_taken_for_an_unreachable_server(quick,
                                                                                  tmp_path):
    # a process of its own: wandb reads the environment once per process
    env = {**os.environ, "WANDB_SILENT": "maybe", "WANDB_API_KEY": "x" * 40,
           "WANDB_BASE_URL": "http://127.0.0.1:9"}
    run = subprocess.run(
        [sys.executable, "-m", "downsample_study", *quick, "logger=wandb",
         "logger.wandb.init_timeout=3", "hydra.run.dir=out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    output = run.stdout + run.stderr
    assert ("error: W&B refused its settings: silent='maybe' (from WANDB_SILENT in the "
            "environment)") in output
    assert "cannot reach the server" not in output and "Traceback" not in output


@pytest.mark.parametrize(("mode", "resume"), [("online", "allow"), ("offline", None)])
def test_every_attempt_of_a_job_logs_to_its_one_run_id(mode, resume, tmp_path):
    from downsample_study.training.configs import WandbConfig
    from downsample_study.training.tracking import RunIdentity, run_id_of
    from downsample_study.training.wandb_tracker import WandbTracker

    first = run_id_of(tmp_path, resumed=False)
    assert run_id_of(tmp_path, resumed=True) == first  # a resumed attempt: the same run
    assert run_id_of(tmp_path, resumed=False) != first  # a job started over: a new one
    run = RunIdentity("job", [], run_id=run_id_of(tmp_path, resumed=True))
    logger = WandbTracker()._logger(WandbConfig(), run, tmp_path, mode)
    # online, wandb continues the run of that id (W&B cannot resume offline runs)
    assert (logger._wandb_init["id"], logger._wandb_init["resume"]) == (run.run_id, resume)


def test_a_resumed_job_is_one_complete_wandb_run_for_sync(job, tmp_path, monkeypatch):
    from test_stops import signal_at_step

    args = [*job, "logger=wandb", "logger.wandb.mode=offline", "trainer.max_epochs=3",
            "hydra.run.dir=out"]
    with monkeypatch.context() as patch:
        signal_at_step(patch, 24, 15)  # SIGTERM in the third epoch
        assert launch(args).exit_code == 143
    assert launch(args).exit_code == 0
    folder = tmp_path / "out"
    [run] = read_wandb_runs(folder / "wandb")  # what `wandb sync <job>/wandb/offline-run-*` sends
    [superseded] = read_wandb_runs(folder / "wandb-superseded")
    assert run.run_id == superseded.run_id == (folder / ".run_id").read_text().strip()
    epochs = [row["epoch"] for row in run.history if "val/acc_top1" in row]
    assert epochs == [1, 2, 3]  # each epoch once, counted from 1: two replayed, one trained
    assert run.exit_code == 0 and superseded.exit_code == 143


# --- results ---------------------------------------------------------------------------------


def test_an_unreadable_results_file_is_listed_by_the_summary_and_the_report(
    job, tmp_path, caplog
):
    assert launch(["-m", *job, "downsample=maxpool,avgpool", "hydra.sweep.dir=sweep"]
                  ).exit_code == 0
    [broken] = (tmp_path / "sweep").glob("*downsample=avgpool*/results.json")
    broken.write_text('{"status": "compl')  # cut short by a crash of another tool
    status, logged = summarize_sweep(tmp_path / "sweep", caplog)
    assert status == 1  # never a swallowed warning, status 0
    assert "2 jobs with results, 1 completed, 0 failed, 1 unreadable" in logged
    report = write_report(tmp_path / "sweep", use_wandb=False, draw_plots=False)
    [unreadable] = report.unfinished
    assert unreadable.status == "unreadable" and "unreadable" in unreadable.error
    assert "unreadable" in (tmp_path / "sweep" / "report.md").read_text()


@pytest.mark.parametrize("names", [("best-epoch2.ckpt", "last.ckpt"),
                                   ("last.ckpt", "best-epoch2.ckpt")])
def test_of_checkpoints_saved_within_one_clock_tick_a_job_resumes_from_last(names, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in names:  # in either order, one mtime: the file system's clock is coarse
        torch.save({"epoch": 2}, folder / name)
        os.utime(folder / name, ns=(1_000_000_000, 1_000_000_000))
    assert resume_point(tmp_path) == folder / "last.ckpt"
    os.utime(folder / "best-epoch2.ckpt", ns=(2_000_000_000, 2_000_000_000))
    assert resume_point(tmp_path) == folder / "best-epoch2.ckpt"  # else the newest


# --- what counts as completed -----------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True])
def test_a_run_whose_losses_overflow_fails_and_counts_its_epochs_from_1(job, packed, tmp_path,
                                                                        capsys):
    """At lr=1e6 a step's loss stays finite (~1e36) while the epoch's sums and the validation
    and test losses overflow: every seed is failed, none completed with an infinite loss."""
    run = launch(["-m", *job, "optimizer.lr=1e6", "seed=range(4)", "hydra.sweep.dir=sweep",
                  *(["hydra/sweeper=packed"] if packed else [])], capsys)
    assert run.exit_code == 1 and "0 completed, 4 failed" in run.output
    for results in results_under(tmp_path / "sweep"):
        assert results["status"] == "failed" and "the run diverged" in results["error"]
        assert " at epoch 1, " in results["error"]  # counted from 1, as everywhere


def test_a_tracker_that_cannot_end_its_run_leaves_the_failure_recorded(job, tmp_path,
                                                                      monkeypatch, capsys):
    from downsample_study.training.tracking import CsvTracker

    def full_disk(self, logger, exit_code):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CsvTracker, "finish", full_disk)
    run = launch([*job, "logger=csv", "optimizer=sgd", "optimizer.lr=1e6",
                  "downsample.batch_norm=false", "hydra.run.dir=out"], capsys)
    assert run.exit_code == 1 and "did not end cleanly" in run.output
    assert "Traceback" not in run.output and "Error executing job" not in run.output
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "failed" and "the run diverged" in results["error"]


# --- storage errors outside a job's own writes ------------------------------------------------


def test_a_disk_that_fills_between_two_jobs_ends_the_sweep_with_its_summary(job, tmp_path,
                                                                           monkeypatch, capsys):
    """Hydra writes a job's .hydra/ before the job starts; a write that fails there, as a
    full disk fails a write, names no file of its own."""
    import hydra.core.utils as hydra_utils

    save, folders = hydra_utils._save_config, []

    def full_after_the_first_job(cfg, filename, output_dir):
        folders.append(str(output_dir))
        if len(set(folders)) > 1:
            raise OSError(28, "No space left on device")
        return save(cfg, filename, output_dir)

    monkeypatch.setattr(hydra_utils, "_save_config", full_after_the_first_job)
    run = launch(["-m", *job, "seed=0,1", "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    [line] = [line for line in run.output.splitlines() if line.startswith("error: ")]
    assert "seed=1" in line and "No space left on device" in line and "?" not in line
    assert "sweep sweep: 2 jobs with results, 1 completed" not in run.output
    assert "sweep sweep: 1 job with results, 1 completed" in run.output  # its summary


@pytest.mark.parametrize("key", ["hydra.run.dir", "paths.cache_dir"])
def test_a_name_over_255_characters_is_one_line_naming_its_path(job, key, tmp_path, capsys):
    run = launch([*job, f"{key}={tmp_path / ('x' * 300)}",
                  *([] if key == "hydra.run.dir" else ["hydra.run.dir=out"])], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    [line] = [line for line in run.output.splitlines() if line.startswith("error: ")]
    assert "x" * 300 in line and "File name too long" in line and "255" in line


def test_a_job_resumed_from_its_selected_checkpoint_keeps_one_best_and_one_last(job, tmp_path):
    assert launch([*job, "trainer.max_epochs=1", "hydra.run.dir=out"]).exit_code == 0
    checkpoints = tmp_path / "out" / "checkpoints"
    (tmp_path / "out" / "results.json").unlink()  # as if killed after its last save
    (checkpoints / "last.ckpt").write_bytes(b"cut short")  # so it resumes from best-epoch1
    for epochs in (3, 5):  # longer each time: it goes on from its checkpoints
        (tmp_path / "out" / "results.json").unlink(missing_ok=True)
        assert launch([*job, f"trainer.max_epochs={epochs}",
                       "hydra.run.dir=out"]).exit_code == 0
    names = sorted(p.name for p in checkpoints.iterdir())
    assert [n for n in names if n.startswith("best-epoch")] == [
        Path(results_under(tmp_path / "out")[0]["checkpoint"]).name]
    assert sorted(set(names) - {n for n in names if n.startswith("best-epoch")}) == [
        "last.ckpt", "last.ckpt.broken"]


def test_a_checkpoint_is_written_beside_its_place_not_in_the_system_temp_folder(tmp_path,
                                                                              monkeypatch):
    import tempfile

    def no_system_temp(*args, **kwargs):
        raise AssertionError("a checkpoint written through the system temp folder")

    monkeypatch.setattr(tempfile, "mkstemp", no_system_temp)
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_results_of_a_newer_schema_version_are_refused_in_one_line_naming_the_file(
        job, tmp_path, capsys):
    from downsample_study import load_run
    from downsample_study.errors import ResultsError
    from downsample_study.results import SCHEMA_VERSION

    assert launch([*job, "hydra.run.dir=out"]).exit_code == 0
    path = tmp_path / "out" / "results.json"
    newer = path.read_text().replace(f'"schema_version": {SCHEMA_VERSION}',
                                     f'"schema_version": {SCHEMA_VERSION + 1}')
    path.write_text(newer)
    with pytest.raises(ResultsError, match=rf"{path}: schema_version {SCHEMA_VERSION + 1}, "):
        load_run(tmp_path / "out")
    run = launch([*job, "hydra.run.dir=out"], capsys)  # not skipped, not replaced either
    assert run.exit_code == 1 and f"{path}: schema_version {SCHEMA_VERSION + 1}" in run.output
    assert "Traceback" not in run.output and path.read_text() == newer


def test_a_report_removes_the_temporary_files_a_killed_report_left(tmp_path):
    sweep = write_report_sweep(tmp_path / "sweep")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = sweep / f".accuracy.png.{gone}.0a1b2c3d.tmp"  # as atomic_write names them
    writing = sweep / f".report.md.{os.getpid()}.0a1b2c3d.tmp"  # a report writing now
    for path in (orphan, writing):
        path.write_bytes(b"half a file")
    write_report(sweep, use_wandb=False, draw_plots=False)
    assert not orphan.exists() and writing.exists()


def test_a_second_sweep_into_the_folder_leaves_the_first_its_own_plan(job, tmp_path,
                                                                      monkeypatch, capsys):
    """Sweep B, started into the folder while A runs, rewrites its multirun.yaml: A's summary,
    exit status and progress still count A's jobs, its diverged one among them."""
    from omegaconf import OmegaConf

    import downsample_study.task as task

    run_job = task.run_job
    b_plan = OmegaConf.create({"hydra": {"sweeper": {
        "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
        "params": {"seed": "5,6"}}, "overrides": {"task": []}}})

    def b_starts_before_the_second_job(cfg):
        if cfg.optimizer.lr > 1:
            OmegaConf.save(b_plan, tmp_path / "sweep" / "multirun.yaml")
        return run_job(cfg)

    monkeypatch.setattr(task, "run_job", b_starts_before_the_second_job)
    run = launch(["-m", *job, "optimizer.lr=1e-3,1e6", "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1
    assert "2 jobs with results, 1 completed, 1 failed" in run.output
    assert "not in this sweep's plan" not in run.output
    assert "sweep progress: jobs 2 of 2 finished" in run.output


def test_a_summary_waits_only_for_the_jobs_of_its_own_plan(job, tmp_path, capsys):
    """Another sweep into the folder runs seed 1; this one, of seed 0 alone, does not wait."""
    assert launch(["-m", *job, "seed=0,1", "hydra.sweep.dir=sweep"]).exit_code == 0
    [seed1] = (tmp_path / "sweep").glob("*seed=1*")
    (seed1 / "results.json").unlink()  # running again, in the other sweep
    holder = hold_lock(seed1, 60)
    try:
        run = launch(["-m", *job, "seed=0", "hydra.sweep.dir=sweep"], capsys)
    finally:
        holder.kill()
    assert run.exit_code == 0 and "waiting for" not in run.output
    assert "1 job with results, 1 completed, 0 failed; 1 job folder not in this sweep's " \
           "plan (another sweep's) not counted" in run.output


def test_a_stop_ends_a_summarys_wait_at_once_and_stops_only_its_own_sweep(job, tmp_path,
                                                                          capsys, monkeypatch):
    """Sweep B runs seed 0, then 1; sweep A, into the same folder, has only seed 0, which B
    runs (B is frozen meanwhile, its lock held), so A's summary waits for it. A stop to A
    while it waits ends A (exit 143) and not B, which got no signal and goes on to its seed 1."""
    import signal
    import threading

    from downsample_study.runtime.locks import running_elsewhere
    from downsample_study.sweeps import summary

    timers = []

    def stopped_while_waiting(folders):
        timers.append(threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)))
        timers[-1].start()
        return wait_for_others(folders)

    wait_for_others = summary.wait_for_others
    monkeypatch.setattr(summary, "wait_for_others", stopped_while_waiting)
    b_args = ["-m", *job, "seed=0,1", "trainer.max_epochs=3", "hydra.sweep.dir=sweep"]
    other = subprocess.Popen([sys.executable, "-m", "downsample_study", *b_args],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in other.stdout:  # until B trains its seed 0
            if line.startswith("epoch 1/3"):
                break
        other.send_signal(signal.SIGSTOP)
        timers.append(threading.Timer(60, other.send_signal, (signal.SIGCONT,)))  # no hang
        timers[-1].start()
        [seed0] = [p for p in (tmp_path / "sweep").glob("*seed=0*") if running_elsewhere(p)]
        run = launch(["-m", *job, "seed=0", "trainer.max_epochs=3", "hydra.sweep.dir=sweep"],
                     capsys)
        assert len(timers) == 2 and run.exit_code == 128 + signal.SIGTERM
        assert running_elsewhere(seed0)
        other.send_signal(signal.SIGCONT)
        rest, _ = other.communicate(timeout=120)
    finally:
        for timer in timers:
            timer.cancel()
        other.kill()
    assert other.returncode == 0, rest[-2000:]
    assert "2 jobs with results, 2 completed" in rest
