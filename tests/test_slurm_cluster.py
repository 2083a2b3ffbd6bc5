"""End-to-end check of the throw-away SLURM cluster: submitit submits real sbatch jobs."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, slurm_cluster_fixture

slurm_cluster = slurm_cluster_fixture()

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _final_states(jobs: list, timeout: float = 30) -> list[str]:
    """Poll (via sacct, i.e. the shim) until no job is pending/running any more."""
    deadline = time.time() + timeout
    while True:
        states = [job.watcher.get_state(job.job_id, mode="force") for job in jobs]
        if not {"PENDING", "RUNNING", "COMPLETING"} & set(states) or time.time() > deadline:
            return states
        time.sleep(0.5)


def test_submitit_runs_two_jobs(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    import submitit

    def job_info(tag: str) -> dict[str, object]:
        # Runs inside the SLURM job (an srun step) in a fresh interpreter.  Defined locally so
        # cloudpickle ships it by value: the job can't import this test module (tests/ is not
        # on its sys.path).  Keep it self-contained.
        import os
        import sys
        import time

        start = time.time()
        time.sleep(2)  # long enough for the two jobs to overlap if they run side by side
        return {
            "tag": tag,
            "pid": os.getpid(),
            "job_id": os.environ.get("SLURM_JOB_ID"),
            "partition": os.environ.get("SLURM_JOB_PARTITION"),
            "python": sys.executable,
            "start": start,
            "end": time.time(),
        }

    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(
        slurm_partition="debug",
        timeout_min=5,
        cpus_per_task=1,
        nodes=1,
        tasks_per_node=1,
        name="smoke",
    )
    t0 = time.time()
    jobs = [executor.submit(job_info, tag) for tag in ("a", "b")]
    results = [job.result() for job in jobs]
    elapsed = time.time() - t0

    assert [r["tag"] for r in results] == ["a", "b"]
    assert [r["job_id"] for r in results] == [job.job_id for job in jobs]
    assert len({r["job_id"] for r in results}) == 2
    assert all(r["partition"] == "debug" for r in results)
    assert all(r["python"] == sys.executable for r in results)
    assert {r["pid"] for r in results}.isdisjoint({os.getpid()})
    # Job states come from the sacct shim (squeue-backed; accounting is off).  The result file
    # is written before the srun step/batch script exit, so the job may still be RUNNING.
    assert _final_states(jobs) == ["COMPLETED"] * 2
    assert socket.gethostname().split(".")[0] == slurm_cluster.node_name
    if slurm_cluster.cpus >= 2:  # CR_Core: two 1-cpu jobs share the node
        first, second = sorted(results, key=lambda r: r["start"])
        assert second["start"] < first["end"], f"jobs did not run concurrently: {results}"
    print(f"two submitit jobs took {elapsed:.1f}s")


def test_submitit_sees_job_killed_by_slurm(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """A job that dies without a result must be reported, not waited on forever.

    submitit learns that from `sacct`; accounting is off, so this exercises the sacct shim.
    """
    import submitit

    def die() -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", timeout_min=5, cpus_per_task=1)
    job = executor.submit(die)
    t0 = time.time()
    job.wait()  # returns once the (shimmed) sacct reports a final state; result() would then
    # spend another 15 s (submitit's _results_timeout_s) looking for a result file
    assert time.time() - t0 < 60
    assert job.state == "FAILED"
    assert not job.paths.result_pickle.exists()
