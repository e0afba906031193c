"""A throwaway single-node Slurm cluster for tests: munged, slurmctld and slurmd (Debian's munge and
slurm-wlm) started as root with their config, keys, state, sockets and logs in a temporary
directory, and stopped again afterwards.

Why: utils/run_slurm.sh relies on the exact behaviour of ``sbatch --wait --array`` (task ids,
exit codes, output files, cancellation), which a stand-in sbatch only imitates. Nothing outside
the temporary directory is touched: the clients find the cluster through ``SLURM_CONF`` and talk
to munged through the socket named in ``AuthInfo``; ports are free loopback ports chosen at start.

Where Slurm cannot start here (not root, binaries missing, a daemon fails) ``slurm_cluster``
skips with the reason and the daemons' log tails; with ``P4Q_REQUIRE_SLURM=1`` it fails instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel")
NODE_CPUS = 8  # cmd.sh's cuda_cmd asks for 4 CPUs per task (adaptation runs through it): two at a time
NODE_MEMORY_MB = 32768  # cmd.sh asks for up to 16G per task; declared, not checked (config_overrides)
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


class SlurmUnavailable(RuntimeError):
    """Slurm cannot run on this machine; the message says why."""


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    partition: str
    procs: Dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> Dict[str, str]:
        """The environment for Slurm clients (sbatch, squeue...) to reach this cluster, without the
        SLURM_* / SBATCH_* / P4Q_SBATCH_OPTS settings of a surrounding site or job."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")) and k != "P4Q_SBATCH_OPTS"}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every daemon's log file and captured output."""
        parts = []
        for log in sorted((self.root / "log").glob("*")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"---- {log} ----\n" + "\n".join(text))
        return "\n".join(parts)

    def client(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)


def find_binary(name: str):
    """NAME on PATH or in /usr/sbin (where Debian puts the daemons; not on every root PATH)."""
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(root: Path, host: str) -> Path:
    """slurm.conf for one node (this host, on loopback), no accounting, no cgroups."""
    for sub in ("state", "spool", "log", "run", "munge"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=p4qtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.socket",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/run/slurmctld.pid",
        f"SlurmdPidFile={root}/run/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "PropagateResourceLimits=NONE",
        "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        # The declared CPUs and memory are taken as they are (a CI machine may have fewer).
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        # sbatch --wait polls every 2 s when MinJobAge <= 4 (it waits longer between polls otherwise).
        "MinJobAge=4",
        "KillWait=2",
        "InactiveLimit=0",
        "MailProg=/bin/true",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} State=UNKNOWN",
        f"PartitionName=p4q Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    return conf


def start(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd; return once the node is idle. Raises SlurmUnavailable."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("the test cluster's daemons run as root; this is uid %d" % os.geteuid())
    missing = [b for b in BINARIES if not find_binary(b)]
    if missing:
        raise SlurmUnavailable(f"not installed: {' '.join(missing)} (apt-get install slurm-wlm munge)")
    if len(str(root / "munge" / "munge.socket")) > 100:  # AF_UNIX paths hold at most 107 bytes
        raise SlurmUnavailable(f"the munge socket path under {root} is too long; use a shorter temp dir")
    host = socket.gethostname().split(".")[0]
    conf = write_config(root, host)
    cluster = SlurmCluster(root=root, conf=conf, partition="p4q")
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = cluster.env
    try:
        cluster.procs["munged"] = _spawn(
            [find_binary("munged"), "--foreground", "--force", f"--key-file={key}",
             f"--socket={root}/munge/munge.socket", f"--pid-file={root}/run/munged.pid",
             f"--log-file={root}/log/munged.log", f"--seed-file={root}/munge/munged.seed"],
            root / "log" / "munged.out", env)
        _wait(cluster, "munged", lambda: (root / "munge" / "munge.socket").exists(), 15)
        cluster.procs["slurmctld"] = _spawn([find_binary("slurmctld"), "-D", "-c", "-f", str(conf)],
                                            root / "log" / "slurmctld.out", env)
        _wait(cluster, "slurmctld", lambda: cluster.client("scontrol", "ping", timeout=10).returncode == 0
              and "UP" in cluster.client("scontrol", "ping", timeout=10).stdout, 30)
        cluster.procs["slurmd"] = _spawn([find_binary("slurmd"), "-D", "-f", str(conf)],
                                         root / "log" / "slurmd.out", env)
        _wait(cluster, "slurmd", lambda: node_state(cluster) == "idle", START_TIMEOUT_S)
    except BaseException:
        stop(cluster)
        raise
    return cluster


def node_state(cluster: SlurmCluster) -> str:
    res = cluster.client("sinfo", "-h", "-N", "-o", "%T", timeout=10)
    return res.stdout.strip() if res.returncode == 0 else ""


def _spawn(argv: List[str], out: Path, env: Dict[str, str]) -> subprocess.Popen:
    with open(out, "w") as f:
        # Own session: a Ctrl-C meant for pytest does not reach the daemons; stop() ends them.
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def _wait(cluster: SlurmCluster, name: str, ready, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        proc = cluster.procs[name]
        if proc.poll() is not None:
            raise SlurmUnavailable(f"{name} exited with status {proc.returncode} at start\n"
                                   + cluster.log_tails())
        try:
            if ready():
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.3)
    raise SlurmUnavailable(f"{name} not ready after {timeout:.0f} s\n" + cluster.log_tails())


def stop(cluster: SlurmCluster) -> None:
    """Cancel every job, stop the daemons (TERM, then KILL after a bounded wait), and end any job
    step daemon (slurmstepd) of this cluster that outlived slurmd."""
    if "slurmctld" in cluster.procs and cluster.procs["slurmctld"].poll() is None:
        try:
            cluster.client("scancel", "--full", f"--partition={cluster.partition}", timeout=10)
            deadline = time.time() + STOP_TIMEOUT_S
            while time.time() < deadline:
                res = cluster.client("squeue", "-h", "-o", "%i", timeout=10)
                if res.returncode != 0 or not res.stdout.strip():
                    break
                time.sleep(0.5)
        except subprocess.TimeoutExpired:
            pass
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    for pid in stepd_pids(cluster):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stepd_pids(cluster: SlurmCluster) -> List[int]:
    """slurmstepd processes started by this cluster's slurmd (they carry its SLURM_CONF)."""
    mark = f"SLURM_CONF={cluster.conf}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.path.basename(os.readlink(entry / "exe")) != "slurmstepd":
                continue
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node Slurm for the tests of one module; skips where Slurm cannot start."""
    root = tmp_path_factory.mktemp("slurm")
    if len(str(root)) > 80:  # a long --basetemp: keep the munge socket path short enough
        root = Path(tempfile.mkdtemp(prefix="p4q-slurm-", dir="/tmp"))
    try:
        cluster = start(root)
    except SlurmUnavailable as exc:
        if os.environ.get("P4Q_REQUIRE_SLURM") == "1":
            pytest.fail(f"Slurm could not start (P4Q_REQUIRE_SLURM=1): {exc}")
        pytest.skip(f"Slurm could not start: {exc}")
    try:
        yield cluster
    finally:
        stop(cluster)
