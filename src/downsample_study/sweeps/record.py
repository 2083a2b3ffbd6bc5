"""A sweep's record: the few kilobytes that hold what it found, without checkpoints or logs.

Small enough to keep in a repository, it is all the report reads; copied back into a sweep
folder, all the sweep's command needs to go on, so a sweep can outlive its machine's disk. An
interrupted job is left out: it needs the checkpoint it resumes from.

    downsample-study record SWEEP DEST   # SWEEP's record, copied into DEST
    downsample-study record DEST SWEEP2  # and back, to finish it in SWEEP2
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from downsample_study.console import SideParser, command_name, side_command
from downsample_study.errors import ResultsError, UserError, not_a_folder
from downsample_study.layout import (
    BEST_FILE,
    CONFIG_FILE,
    EPOCHS_FILE,
    OVERRIDES_FILE,
    RESULTS_FILE,
    SWEEP_FILE,
    TUNING_DIR,
)
from downsample_study.results import Status, read_results
from downsample_study.storage import atomic_write
from downsample_study.sweeps.folder import SweepFolder

# a job is whole or not at all: its results.json, which says it finished, copied last
JOB_FILES = (EPOCHS_FILE, CONFIG_FILE, OVERRIDES_FILE, RESULTS_FILE)
FINISHED = (Status.completed, Status.failed)


@dataclass(frozen=True)
class Copied:
    jobs: int  # finished jobs in the record
    studies: int  # learning-rate studies with their best rate
    written: int  # files that were new or changed in the destination
    size: int  # bytes of the record


def _recorded(path: Path) -> Status | None:
    try:
        return read_results(path).status if path.is_file() else None
    except ResultsError:
        return None


def record_files(sweep: Path, dest: Path) -> tuple[list[Path], int, int]:
    """The record's files (relative to ``sweep``), its jobs and its studies; a job that
    completed in ``dest`` but not in ``sweep`` is left out."""
    folder = SweepFolder(sweep)
    files = [Path(SWEEP_FILE)] if (sweep / SWEEP_FILE).is_file() else []
    jobs = 0
    for job in [*folder.jobs(), *folder.trials()]:
        status = job.results.status if job.results is not None else None
        if status not in FINISHED:
            continue
        relative = job.folder.relative_to(sweep)
        if status != Status.completed and _recorded(dest / relative / RESULTS_FILE) == (
                Status.completed):
            continue
        files += [relative / name for name in JOB_FILES if (job.folder / name).is_file()]
        jobs += 1
    studies = folder.studies()
    files += [p.relative_to(sweep) for p in studies]
    return files, jobs, len(studies)


def copy_record(sweep: Path, dest: Path) -> Copied:
    """Copy ``sweep``'s record into ``dest``, replacing differing files except a completed
    job's by a failed one's; files of ``dest`` outside the record stay."""
    sweep, dest = Path(sweep), Path(dest)
    if not sweep.is_dir():
        raise UserError(f"{sweep}: {not_a_folder(sweep)} (a sweep folder, or the record of one)")
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest}: not a folder (a record goes to a folder, new or existing)")
    inner, outer = sweep.resolve(), dest.resolve()
    if inner == outer or outer.is_relative_to(inner) or inner.is_relative_to(outer):
        raise UserError(f"{dest}: a record goes to a folder apart from the one it is the "
                        f"record of ({sweep}), neither inside it nor around it")
    files, jobs, studies = record_files(sweep, dest)
    if not jobs and not studies:
        raise UserError(f"{sweep}: no finished job (completed or failed {RESULTS_FILE}) and "
                        f"no {TUNING_DIR}/*/{BEST_FILE}: nothing to record")
    written = size = 0
    for relative in files:
        data = (sweep / relative).read_bytes()
        size += len(data)
        target = dest / relative
        if target.is_file() and target.read_bytes() == data:
            continue
        with atomic_write(target, "wb") as f:
            f.write(data)
        written += 1
    return Copied(jobs, studies, written, size)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command on ``argv`` (the command line's by default), named ``prog`` in its usage."""
    parser = SideParser(
        prog=prog or command_name("downsample_study.sweeps.record"),
        description="Copy a sweep's record (results, per-epoch metrics, configs, tuned rates; "
                    "no checkpoints or logs) into another folder: to keep it, to report on it, "
                    "or, copied back into a sweep folder, to finish the sweep there.")
    parser.add_argument("sweep", type=Path, help="the sweep folder (or a record)")
    parser.add_argument("dest", type=Path, help="the folder the record goes to")
    args = parser.parse_args(argv)
    return side_command(lambda: _copy(args), stopped=f"{args.dest} holds part of the record, "
                        f"each file whole; run the command again to finish it")


def _copy(args: argparse.Namespace) -> int:
    copied = copy_record(args.sweep, args.dest)
    print(f"{args.sweep} -> {args.dest}: {copied.jobs} finished jobs, {copied.studies} "
          f"learning-rate studies ({copied.size / 1e3:,.0f} kB); {copied.written} files "
          "new or changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
