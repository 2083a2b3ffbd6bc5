"""The throw-away SLURM cluster end to end: submitit submits real sbatch jobs, and the
project's sweeps run through ``hydra/launcher=slurm``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from support.slurm_cluster import SlurmCluster, slurm_cluster_fixture

slurm_cluster = slurm_cluster_fixture()

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # one cluster


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


# --- the project's sweeps on the cluster ------------------------------------------------------

SWEEP_TIMEOUT_S = 300


def _sweep(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m downsample_study -m ARGS`` through the SLURM preset, as a user starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "downsample_study", "-m", *args, "hydra/launcher=slurm",
         "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=1", "logger=none"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_for(what: str, ready, proc: subprocess.Popen, timeout: float = SWEEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not (found := ready()):
        assert proc.poll() is None, f"the sweep ended while waiting for {what}:\n" + (
            proc.stdout.read() if proc.stdout else ""
        )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def _results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}


def test_sweep_on_slurm_finishes_and_a_requeued_job_resumes(
    slurm_cluster: SlurmCluster, quick: list[str], tmp_path: Path
) -> None:
    """Two jobs submitted as a SLURM array; one gets the signal SLURM sends a job
    ``signal_delay_s`` before its time limit (USR2), is requeued by submitit and resumes from
    its last checkpoint."""
    sweep = tmp_path / "sweep"
    proc = _sweep([*quick, "trainer.max_epochs=8", "downsample=maxpool,avgpool",
                   f"hydra.sweep.dir={sweep}"], tmp_path)
    last = _wait_for("a checkpoint", lambda: sorted(sweep.glob("*/checkpoints/last.ckpt")), proc)
    job = last[0].parents[1]
    slurm_id = str(OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.job.id)
    slurm_cluster.run("scancel", "--signal=USR2", slurm_id)
    # SLURM holds a requeued job back for two minutes; release it sooner, but not within the
    # second its first run's launch credential was revoked: slurmd compares the two in whole
    # seconds and would refuse the relaunch ("Job credential revoked"), failing the job
    _wait_for("the requeue", lambda: {"Restarts=1", "JobState=PENDING"} <= set(
        slurm_cluster.run("scontrol", "show", "job", slurm_id).stdout.split()), proc)
    slurm_cluster.run("scontrol", "update", f"jobid={slurm_id}", "StartTime=now+3")
    output, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)

    assert proc.returncode == 0, output[-3000:]
    results = _results(sweep)
    assert len(results) == 2 and all(r["status"] == "completed" for r in results.values())
    assert all(r["epochs"] == 8 for r in results.values())
    assert results[job.name]["resumed_from"] == str(last[0])
    [other] = set(results) - {job.name}
    assert results[other]["resumed_from"] is None
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2  # one result per array task


def test_a_packed_sweep_on_slurm_runs_one_pack_per_slurm_job(
    slurm_cluster: SlurmCluster, quick: list[str], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    proc = _sweep([*quick, "downsample=maxpool,avgpool", "seed=0,1", "hydra/sweeper=packed",
                   f"hydra.sweep.dir={sweep}"], tmp_path)
    output, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    assert proc.returncode == 0, output[-3000:]
    results = _results(sweep)
    assert len(results) == 4 and all(r["status"] == "completed" for r in results.values())
    assert len({r["pack"]["id"] for r in results.values()}) == 2
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2  # two SLURM jobs, 2 seeds each


def test_ddp_job_on_slurm_runs_one_task_per_device(
    slurm_cluster: SlurmCluster, quick: list[str], tmp_path: Path
) -> None:
    if slurm_cluster.cpus < 2:
        pytest.skip("needs a node with 2 CPUs for 2 tasks")
    sweep = tmp_path / "sweep"
    proc = _sweep([*quick, "accelerator=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                   f"hydra.sweep.dir={sweep}"], tmp_path)
    output, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    assert proc.returncode == 0, output[-3000:]
    [results] = _results(sweep).values()
    assert results["status"] == "completed"
    # SLURM started both processes (tasks_per_node=2), so Lightning ran plain ddp over them
    assert results["config"]["trainer"]["strategy"] == "ddp"
    assert results["resources"]["processes"] == 2
