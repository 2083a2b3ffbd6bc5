"""A throw-away single-node SLURM cluster (munged + slurmctld + slurmd) for tests.

Not a test module: tests import it.  Everything (config, munge key/socket, state, spool,
logs, pid files) lives in a private directory, the daemons listen on free ports, and all of
it is torn down afterwards, so it does not touch (or need) a system SLURM/munge setup.
Install the Debian packages with ``scripts/install_slurm.sh`` (needs root).

Usage in a test module::

    from slurm_cluster import slurm_cluster_fixture

    slurm_cluster = slurm_cluster_fixture()  # session-scoped fixture named "slurm_cluster"

    @pytest.mark.slurm
    def test_x(slurm_cluster):
        # os.environ now has SLURM_CONF and PATH with a `sacct` shim (see below), so
        # sbatch/squeue/scancel/srun and submitit's "slurm" executor talk to this cluster.
        ...

or directly: ``with start_slurm_cluster(tmp_dir) as cluster: cluster.run("sinfo")``.

Accounting is off (no slurmdbd), so the real ``sacct`` only errors.  submitit polls
``sacct -o JobID,State,NodeList --parsable2 -j ID ...`` for job states; with it failing a
job that dies without writing its result would be waited on forever.  The cluster therefore
puts a small ``sacct`` shim first on the clients' PATH that answers those queries from
``squeue --states=all`` (finished jobs stay visible for ``MinJobAge`` seconds).

Set ``SLURM_TESTS_REQUIRED=1`` to turn "slurm unavailable" skips into failures (e.g. in CI).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRED_BINARIES = (
    "munged",
    "slurmctld",
    "slurmd",
    "slurmstepd",
    "sbatch",
    "squeue",
    "sinfo",
    "scancel",
    "scontrol",
    "srun",
)
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
PARTITION = "debug"
STARTUP_TIMEOUT_S = 30.0
# Unix socket paths are limited to 107 bytes; slurmd puts step sockets in its spool dir.
_MAX_SOCKET_DIR_LEN = 60
# Environment variables that would leak an outer SLURM job/config into our clients/daemons.
_SLURM_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_")
_MARKER_ENV = "DOWNSAMPLE_STUDY_TEST_SLURM_CLUSTER"

_SACCT_SHIM = '''\
#!{python}
"""sacct stand-in for a cluster without accounting: answers from `squeue --states=all`."""
import subprocess
import sys

SQUEUE_FIELDS = {{"jobid": "%i", "state": "%T", "nodelist": "%N", "jobname": "%j",
                 "partition": "%P", "user": "%u", "elapsed": "%M", "timelimit": "%l",
                 "ncpus": "%C", "nnodes": "%D", "reason": "%r", "start": "%S",
                 "submit": "%V", "end": "%e", "workdir": "%Z"}}


def main(argv):
    fields, jobs, delim, header = ["JobID", "JobName", "State"], [], None, True
    args = iter(argv)
    for arg in args:
        key, _, value = arg.partition("=")
        if key in ("-o", "--format"):
            fields = (value or next(args)).split(",")
        elif key in ("-j", "--jobs"):
            jobs.extend((value or next(args)).split(","))
        elif key in ("-P", "--parsable2"):
            delim = "|"
        elif key in ("-p", "--parsable"):
            delim = "|"
        elif key in ("-n", "--noheader"):
            header = False
        # anything else (-X, --starttime, -u, ...) is accepted and ignored
    fields = [f.split("%")[0] for f in fields if f]
    sep = "\\x1f"
    fmt = sep.join(SQUEUE_FIELDS.get(f.lower(), "") for f in fields)
    cmd = ["squeue", "--noheader", "--states=all", "--array", "--format=" + fmt]
    if jobs:
        cmd.append("--jobs=" + ",".join(jobs))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [] if proc.returncode else [line.split(sep) for line in proc.stdout.splitlines()]
    delim = delim or " "
    out = [delim.join(fields)] if header else []
    out += [delim.join(cell.strip() for cell in row) for row in rows]
    sys.stdout.write("\\n".join(out) + "\\n")
    return 0


sys.exit(main(sys.argv[1:]))
'''


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(SBIN_DIRS)
    return shutil.which(name, path=path)


def slurm_unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None if it (probably) can."""
    if sys.platform != "linux":
        return "the test SLURM cluster needs Linux"
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        return (
            f"SLURM/munge binaries not found: {', '.join(missing)} "
            "(install them with `sudo scripts/install_slurm.sh`)"
        )
    if os.geteuid() != 0:
        return "the test SLURM cluster must run as root (slurmd needs it)"
    return None


def skip_if_slurm_unavailable() -> None:
    """pytest.skip (or pytest.fail if SLURM_TESTS_REQUIRED is set) when slurm can't run."""
    reason = slurm_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("SLURM_TESTS_REQUIRED", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"SLURM_TESTS_REQUIRED is set but {reason}", pytrace=False)
    pytest.skip(reason)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _real_memory_mb() -> int:
    """A bit under the available memory (slurmd drains a node whose RAM is below config)."""
    avail_kb = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail_kb = int(line.split()[1])
    if avail_kb is None:
        return 1024
    return max(256, int(avail_kb / 1024 * 0.9))


def _clean_env(base: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in base.items() if not k.startswith(_SLURM_ENV_PREFIXES)}


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
        env = _clean_env(os.environ if base is None else base)
        env.update(self.env)
        return env

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a slurm client command (e.g. ``cluster.run("squeue")``) against this cluster."""
        return subprocess.run(
            list(cmd),
            env=self.client_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def apply_env(self, setenv: Callable[[str, str], Any], delenv: Callable[..., Any]) -> None:
        """Point os.environ at this cluster, e.g. ``cluster.apply_env(mp.setenv, mp.delenv)``."""
        for key in list(os.environ):
            if key.startswith(_SLURM_ENV_PREFIXES):
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
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
            )
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
        needle = f"{_MARKER_ENV}={self.root}".encode()
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


def _write_slurm_conf(
    path: Path,
    *,
    root: Path,
    spool: Path,
    munge_socket: Path,
    node_name: str,
    cpus: int,
    real_memory: int,
    ports: list[int],
) -> None:
    ctld_port, slurmd_port = ports
    lines = [
        "# generated by tests/slurm_cluster.py",
        "ClusterName=testcluster",
        f"SlurmctldHost={node_name}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={spool}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "ReturnToService=2",
        # keep finished jobs queryable by squeue (the sacct shim) for a while
        "MinJobAge=600",
        "KillWait=5",
        "InactiveLimit=0",
        "SlurmdTimeout=300",
        "SlurmctldTimeout=120",
        "MessageTimeout=20",
        "MailProg=/bin/true",
        # don't drain the node if hwloc sees a different layout (containers, cgroup cpusets)
        "SlurmdParameters=config_overrides",
        f"NodeName={node_name} NodeAddr=127.0.0.1 NodeHostname={node_name} CPUs={cpus} "
        f"Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={real_memory} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node_name} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]
    path.write_text("\n".join(lines))


def start_slurm_cluster(tmp_dir: Path, *, timeout: float = STARTUP_TIMEOUT_S) -> SlurmCluster:
    """Start munged, slurmctld and slurmd with a private config under `tmp_dir`.

    Skips the calling test (pytest.skip) when SLURM/munge can't run here.  Returns once
    `sinfo` reports the node idle; raises RuntimeError/TimeoutError with the daemons' logs
    otherwise.  The returned cluster is a context manager; stop() tears everything down.
    """
    skip_if_slurm_unavailable()
    root = Path(tmp_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "log", "run", "munge", "bin"):
        (root / sub).mkdir(exist_ok=True)
    cleanup: list[Path] = []
    if len(str(root)) <= _MAX_SOCKET_DIR_LEN:
        sock_dir = root / "sock"
        sock_dir.mkdir(exist_ok=True)
    else:  # unix socket paths must stay short
        sock_dir = Path(tempfile.mkdtemp(prefix="slurm-"))
        cleanup.append(sock_dir)
    spool = sock_dir / "spool"
    spool.mkdir(exist_ok=True)
    # munged refuses group/world-writable dirs and warns if the socket dir isn't a+x
    for d in (root, root / "munge"):
        d.chmod(0o700)
    sock_dir.chmod(0o755)

    node_name = socket.gethostname().split(".")[0] or "localhost"
    cpus = os.cpu_count() or 1
    with contextlib.suppress(AttributeError):
        cpus = len(os.sched_getaffinity(0))
    conf = root / "slurm.conf"
    munge_socket = sock_dir / "munge.sock"
    _write_slurm_conf(
        conf,
        root=root,
        spool=spool,
        munge_socket=munge_socket,
        node_name=node_name,
        cpus=cpus,
        real_memory=_real_memory_mb(),
        ports=_free_ports(2),
    )

    shim = root / "bin" / "sacct"
    shim.write_text(_SACCT_SHIM.format(python=sys.executable))
    shim.chmod(0o755)

    client_path = os.pathsep.join([str(root / "bin"), os.environ.get("PATH", os.defpath)])
    cluster = SlurmCluster(
        root=root,
        conf=conf,
        node_name=node_name,
        cpus=cpus,
        env={"SLURM_CONF": str(conf), "PATH": client_path},
        _cleanup_dirs=cleanup,
    )
    # munged logs to its stdout in --foreground mode; slurm daemons to both
    cluster.logs.update(
        {
            "slurmctld": root / "log" / "slurmctld.log",
            "slurmd": root / "log" / "slurmd.log",
        }
    )
    daemon_env = _clean_env(os.environ)
    daemon_env.update(
        {
            "SLURM_CONF": str(conf),
            _MARKER_ENV: str(root),
            "PATH": os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(SBIN_DIRS),
        }
    )
    atexit.register(cluster.stop)
    try:
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        cluster._spawn(
            "munged",
            [
                str(_which("munged")),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={root / 'run' / 'munged.pid'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            daemon_env,
        )
        cluster._wait("munged socket", munge_socket.exists, timeout)
        cluster._spawn("slurmctld", [str(_which("slurmctld")), "-D", "-i"], daemon_env)
        cluster._spawn("slurmd", [str(_which("slurmd")), "-D", "-N", node_name], daemon_env)
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
