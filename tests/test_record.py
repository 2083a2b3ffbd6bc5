"""A sweep's record (sweeps/record.py): the files that hold its findings, copied without its
checkpoints and logs; back into a sweep folder it lets the sweep go on (test_tuning.py runs
that end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from downsample_study.results import Results, Status, read_results, write_results
from downsample_study.sweeps.record import copy_record, main

COMPLETED = "dataset=mnist,seed=0"
FAILED = "dataset=mnist,seed=1"
STUDY = "tuning/dataset=mnist"
# what the record of the sweep below holds
RECORD = {
    "multirun.yaml",
    *(f"{job}/{name}" for job in (COMPLETED, FAILED, f"{STUDY}/trial0")
      for name in ("results.json", "epochs.csv", ".hydra/config.yaml", ".hydra/overrides.yaml")),
    f"{STUDY}/best.yaml",
}


def write_job(folder: Path, status: Status) -> None:
    write_results(folder, Results(status, {"seed": 0}))
    (folder / "epochs.csv").write_text("epoch,val/acc_top1\n1,0.9\n")
    (folder / ".hydra").mkdir()
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        (folder / ".hydra" / name).write_text(f"# {name} of {folder.name}\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"\0" * 1000)
    (folder / "wandb" / "run" / "files").mkdir(parents=True)
    (folder / "wandb" / "run" / "files" / "results.json").write_text("{}")
    (folder / "downsample_study.log").write_text("training\n")


@pytest.fixture
def sweep(tmp_path) -> Path:
    """A sweep folder with a job of each kind, a learning-rate study and a pack's folder."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for name, status in ((COMPLETED, Status.completed), (FAILED, Status.failed),
                         ("dataset=mnist,seed=2", Status.interrupted),
                         (f"{STUDY}/trial0", Status.completed),
                         (f"{STUDY}/trial1", Status.interrupted)):
        (sweep / name).mkdir(parents=True)
        write_job(sweep / name, status)
    (sweep / STUDY / "best.yaml").write_text("lr: 0.001\nvalue: 0.9\ntrials: []\n")
    (sweep / "dataset=mnist,seed=3" / ".hydra").mkdir(parents=True)  # killed before results
    (sweep / "packs" / "seeds0-1" / ".hydra").mkdir(parents=True)  # a pack's own folder
    (sweep / "packs" / "seeds0-1" / ".hydra" / "overrides.yaml").write_text("- pack.seeds=[0,1]\n")
    return sweep


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}


def test_the_record_is_each_finished_jobs_findings_and_the_tuned_rates(sweep, tmp_path):
    copied = copy_record(sweep, tmp_path / "record")
    record = files_under(tmp_path / "record")
    assert set(record) == RECORD  # no checkpoints, logs, tracker runs or unfinished jobs
    assert all(data == (sweep / name).read_bytes() for name, data in record.items())
    assert (copied.jobs, copied.studies, copied.written) == (3, 1, len(RECORD))
    assert copied.size == sum(map(len, record.values()))


def test_a_second_copy_writes_only_what_changed(sweep, tmp_path):
    copy_record(sweep, tmp_path / "record")
    assert copy_record(sweep, tmp_path / "record").written == 0
    write_job(sweep / "dataset=mnist,seed=4", Status.completed)
    (sweep / COMPLETED / "epochs.csv").write_text("epoch,val/acc_top1\n1,0.95\n")
    copied = copy_record(sweep, tmp_path / "record")
    assert (copied.jobs, copied.written) == (4, 4 + 1)
    assert (tmp_path / "record" / COMPLETED / "epochs.csv").read_text().endswith("0.95\n")


def test_a_job_that_completed_is_not_replaced_by_one_that_failed(sweep, tmp_path):
    dest = tmp_path / "dest"
    (dest / FAILED).mkdir(parents=True)
    write_results(dest / FAILED, Results(Status.completed, {"seed": 1}))
    copy_record(sweep, dest)
    assert read_results(dest / FAILED / "results.json").completed
    assert not (dest / FAILED / "epochs.csv").exists()  # none of its files


@pytest.mark.parametrize(("source", "dest", "message"), [
    ("nowhere", "record", "nowhere: no such folder"),
    ("a_file", "record", "a_file: a file, not a folder"),
    ("sweep", "sweep/record", "neither inside it nor around it"),
    ("sweep", "sweep", "neither inside it nor around it"),
    ("sweep/packs", "record", "no finished job"),
    ("sweep", "a_file", "a_file: not a folder (a record goes to a folder"),
    # a folder that cannot be written: a StorageError, 1 as for a full disk
    ("sweep", "a_file/record", "a_file/record/multirun.yaml: Not a directory"),
])
def test_bad_input_is_one_line_and_exit_2(sweep, tmp_path, capsys, source, dest, message):
    (tmp_path / "a_file").write_text("not a folder")
    status = 1 if "Not a directory" in message else 2
    assert main([str(tmp_path / source), str(tmp_path / dest)]) == status
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "record").exists()


@pytest.mark.parametrize("after", range(1, 12))
def test_a_record_copied_halfway_holds_each_job_whole_or_not_at_all(after, sweep, tmp_path,
                                                                    monkeypatch):
    """results.json, which says a job finished, is each job's last file: a copy stopped
    after any file leaves no job that has results but not the rest."""
    import downsample_study.sweeps.record as record

    copied, atomic_write = [], record.atomic_write

    def stopped_after(path, mode="w", **kwargs):
        if len(copied) == after:
            raise KeyboardInterrupt  # Ctrl-C, or a kill, mid-copy
        copied.append(path)
        return atomic_write(path, mode, **kwargs)

    monkeypatch.setattr(record, "atomic_write", stopped_after)
    with pytest.raises(KeyboardInterrupt):
        copy_record(sweep, tmp_path / "record")
    for results in (tmp_path / "record").rglob("results.json"):
        assert {p.name for p in results.parent.rglob("*") if p.is_file()} == {
            "results.json", "epochs.csv", "config.yaml", "overrides.yaml"}
