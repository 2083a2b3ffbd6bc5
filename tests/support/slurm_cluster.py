"""A throw-away single-node SLURM cluster (munged + slurmctld + slurmd) for tests.

Not a test module: tests import it.  Everything (config, munge key/socket, state, spool,
logs, pid files) lives in a private directory, the daemons listen on free ports, and all of
it is torn down afterwards, so it does not touch (or need) a system SLURM/munge setup.
Install the Debian packages with ``scripts/install_slurm.sh`` (needs root).

Usage in a test module::

    from support.slurm_cluster import slurm_cluster_fixture

    slurm_cluster = slurm_cluster_fixture()  # session-scoped fixture named "slurm_cluster"

    @pytest.mark.slurm
    def test_x(slurm_cluster):
        # os.environ now has SLURM_CONF and PATH with a `sacct` shim (see below), so
        # sbatch/squeue/scancel/srun and submitit's "slurm" executor talk to this cluster.
        ...

or directly: ``with start_slurm_cluster(tmp_dir) as cluster: cluster.run("sinfo")``.

Accounting is off (no slurmdbd), so the real ``sacct`` only errors, and submitit would wait
forever on a job that dies without writing its result.  The cluster therefore puts a small
``sacct`` shim (support.sacct_shim) first on the clients' PATH that answers from
``squeue --states=all`` (finished jobs stay visible for ``MinJobAge`` seconds).

Set ``SLURM_TESTS_REQUIRED=1`` to turn "slurm unavailable" skips into failures (e.g. in CI).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.slurm_setup import (
    MARKER_ENV,
    PARTITION,
    SBIN_DIRS,
    SLURM_ENV_PREFIXES,
    STARTUP_TIMEOUT_S,
    clean_env,
    skip_if_slurm_unavailable,
    which,
    write_cluster_files,
)


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(lines[-n:])


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


@dataclass
class SlurmCluster:
    """A running single-node cluster; use as a context manager or call stop()."""

    root: Path
    conf: Path
    node_name: str
    cpus: int
    partition: str = PARTITION
    #: environment additions for clients (SLURM_CONF, PATH with the sacct shim)
    env: dict[str, str] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _cleanup_dirs: list[Path] = field(default_factory=list)
    _stopped: bool = False

    # -- clients ---------------------------------------------------------------------------
    def client_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) minus outer SLURM_* vars, plus this cluster's env."""
        env = clean_env(os.environ if base is None else base)
        env.update(self.env)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 30
            ) -> subprocess.CompletedProcess[str]:
        """Run a slurm client command (e.g. ``cluster.run("squeue")``) against this cluster."""
        return subprocess.run(list(cmd), env=self.client_env(), capture_output=True, text=True,
                              check=check, timeout=timeout)

    def apply_env(self, setenv: Callable[[str, str], Any], delenv: Callable[..., Any]) -> None:
        """Point os.environ at this cluster, e.g. ``cluster.apply_env(mp.setenv, mp.delenv)``."""
        for key in list(os.environ):
            if key.startswith(SLURM_ENV_PREFIXES):
                delenv(key, raising=False)
        for key, value in self.env.items():
            setenv(key, value)

    def node_state(self) -> str:
        proc = self.run("sinfo", "--noheader", "--Node", "--format=%N %T", check=False, timeout=10)
        for line in proc.stdout.splitlines():
            name, _, state = line.partition(" ")
            if name == self.node_name:
                return state.strip()
        return f"unknown (sinfo rc={proc.returncode}: {proc.stdout.strip()} {proc.stderr.strip()})"

    def diagnostics(self) -> str:
        parts = []
        for name, proc in self._procs.items():
            rc = proc.poll()
            parts.append(f"{name}: {'running' if rc is None else f'exited rc={rc}'}")
        for name, path in self.logs.items():
            if path.exists():
                parts.append(f"----- {name} ({path}) -----\n{_tail(path)}")
        return "\n".join(parts)

    # -- lifecycle -------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        out = open(self.root / "log" / f"{name}.stdout", "wb")  # noqa: SIM115
        try:
            self._procs[name] = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.root)
        finally:
            out.close()
        self.logs.setdefault(f"{name} stdout", self.root / "log" / f"{name}.stdout")

    def _check_alive(self, what: str) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited (rc={proc.returncode}) while {what}\n" + self.diagnostics()
                )

    def _wait(self, what: str, ok: Callable[[], bool], timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(f"waiting for {what}")
            if ok():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout:.0f}s waiting for {what}\n" + self.diagnostics()
                )
            time.sleep(0.2)

    def _cancel_jobs(self, timeout: float = 15.0) -> None:
        if "slurmctld" not in self._procs or self._procs["slurmctld"].poll() is not None:
            return
        with contextlib.suppress(Exception):
            self.run("scancel", "--partition", self.partition, check=False, timeout=10)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                proc = self.run("squeue", "--noheader", "--format=%i", check=False, timeout=10)
                if proc.returncode == 0 and not proc.stdout.strip():
                    return
                time.sleep(0.3)

    def _kill_leftovers(self) -> None:
        """SIGKILL slurmstepd processes of this cluster (and the job processes under them)."""
        needle = f"{MARKER_ENV}={self.root}".encode()
        children = _proc_children()
        me = os.getpid()
        doomed: set[int] = set()
        for pids in children.values():
            for pid in pids:
                if pid != me and _environ_has(pid, needle):
                    stack = [pid]
                    while stack:
                        p = stack.pop()
                        if p not in doomed and p != me:
                            doomed.add(p)
                            stack.extend(children.get(p, []))
        for pid in doomed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Cancel all jobs, stop the daemons (tmp_dir with the logs is left in place)."""
        if self._stopped:
            return
        self._stopped = True
        self._cancel_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._kill_leftovers()
        for d in self._cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_slurm_cluster(tmp_dir: Path, *, timeout: float = STARTUP_TIMEOUT_S) -> SlurmCluster:
    """Start munged, slurmctld and slurmd with a private config under `tmp_dir`.

    Skips the calling test (pytest.skip) when SLURM/munge can't run here.  Returns once
    `sinfo` reports the node idle; raises RuntimeError/TimeoutError with the daemons' logs
    otherwise.  The returned cluster is a context manager; stop() tears everything down.
    """
    skip_if_slurm_unavailable()
    files = write_cluster_files(Path(tmp_dir))
    root, conf, node_name = files.root, files.conf, files.node_name

    client_path = os.pathsep.join([str(root / "bin"), os.environ.get("PATH", os.defpath)])
    cluster = SlurmCluster(
        root=root,
        conf=conf,
        node_name=node_name,
        cpus=files.cpus,
        env={"SLURM_CONF": str(conf), "PATH": client_path},
        _cleanup_dirs=files.cleanup,
    )
    # munged logs to its stdout in --foreground mode; slurm daemons to both
    cluster.logs.update({"slurmctld": root / "log" / "slurmctld.log",
                         "slurmd": root / "log" / "slurmd.log"})
    daemon_env = clean_env(os.environ)
    daemon_env.update({
        "SLURM_CONF": str(conf),
        MARKER_ENV: str(root),
        "PATH": os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(SBIN_DIRS),
    })
    atexit.register(cluster.stop)
    try:
        cluster._spawn(
            "munged",
            [
                str(which("munged")),
                "--foreground",
                "--force",
                f"--key-file={files.munge_key}",
                f"--socket={files.munge_socket}",
                f"--pid-file={root / 'run' / 'munged.pid'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            daemon_env,
        )
        cluster._wait("munged socket", files.munge_socket.exists, timeout)
        cluster._spawn("slurmctld", [str(which("slurmctld")), "-D", "-i"], daemon_env)
        cluster._spawn("slurmd", [str(which("slurmd")), "-D", "-N", node_name], daemon_env)
        cluster._wait(
            f"node {node_name} to be idle", lambda: cluster.node_state().startswith("idle"), timeout
        )
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def slurm_cluster_env(tmp_dir: Path) -> Iterator[SlurmCluster]:
    """Start a cluster and point os.environ (SLURM_CONF, PATH) at it while inside."""
    with start_slurm_cluster(tmp_dir) as cluster, pytest.MonkeyPatch.context() as mp:
        cluster.apply_env(mp.setenv, mp.delenv)
        yield cluster


def slurm_cluster_fixture(scope: str = "session", name: str = "slurm_cluster") -> Any:
    """Make a pytest fixture that yields a running SlurmCluster with os.environ pointed at it.

    Assign the result to a module-level name in a test module or conftest.py::

        slurm_cluster = slurm_cluster_fixture()
    """

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def _fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
        skip_if_slurm_unavailable()
        with slurm_cluster_env(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster

    return _fixture
