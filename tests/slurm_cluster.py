"""A real single-node SLURM (slurmctld, slurmd, slurmdbd + MariaDB, munge) on loopback.

Everything lives under one temporary folder, on non-default ports; every daemon is started
by this module and stopped by PID. Used by tests/test_slurm.py; Debian packages: slurm-wlm,
slurmdbd, munge, mariadb-server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sbatch", "sacct")
CLUSTER = "ttskiln"
ACCOUNT = "ttskiln"
PARTITION = "debug"


def missing_tools() -> list[str]:
    return [tool for tool in DAEMONS if shutil.which(tool) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: list[tuple[str, int]] = []
        self.ports = {name: _free_port() for name in ("ctld", "slurmd", "dbd", "mysql")}
        self.node = socket.gethostname()
        # Slurm's clients (sacctmgr, sacct) reach munge through its default socket whatever
        # AuthInfo says, so munged listens there; its key and state stay under ``root``.
        self.munge_socket = Path("/run/munge/munge.socket.2")
        self.conf = root / "etc" / "slurm.conf"
        self.bin = root / "bin"

    # -- environment -----------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """For every client: our slurm.conf, and an srun that keeps it (the jobstep plugin
        drops SLURM_CONF before its nested srun)."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
        return env

    def run(self, *cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    # -- start / stop ----------------------------------------------------------------------
    def start(self) -> None:
        for sub in ("etc", "munge", "db", "ctld", "slurmd", "log", "run", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_configs()
        self._start_munge()
        self._start_mariadb()
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait(lambda: self.run("sacctmgr", "-n", "list", "cluster", check=False).returncode == 0, "slurmdbd")
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER, check=False)
        self.run("sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER}", check=False)
        self.run("sacctmgr", "-i", "add", "user", os.environ.get("USER", "root"), f"account={ACCOUNT}", f"cluster={CLUSTER}", check=False)
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node])
        self._wait(lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False).stdout, "the node to be idle")

    def stop(self) -> None:
        for name, pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.time() + 20
        for name, pid in reversed(self.pids):
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pids.clear()
        for leftover in (self.munge_socket, Path(f"{self.munge_socket}.lock")):
            leftover.unlink(missing_ok=True)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids.append((name, proc.pid))

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((self.root / "log").iterdir()))
        raise RuntimeError(f"local SLURM: timed out waiting for {what}\n{logs}")

    def _start_munge(self) -> None:
        if self.munge_socket.exists():
            raise RuntimeError(f"{self.munge_socket} exists: another munged runs on this machine; stop it first")
        self.munge_socket.parent.mkdir(parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn("munged", [
            "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
            f"--pid-file={self.root / 'run' / 'munged.pid'}", f"--seed-file={self.root / 'munge' / 'seed'}",
            f"--log-file={self.root / 'log' / 'munged.log'}",
        ])
        self._wait(self.munge_socket.exists, "munged")

    def _start_mariadb(self) -> None:
        datadir = self.root / "db" / "data"
        sock = self.root / "db" / "mysql.sock"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self._spawn("mariadbd", [
            "mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}", f"--port={self.ports['mysql']}",
            "--bind-address=127.0.0.1", "--user=root", f"--pid-file={self.root / 'run' / 'mariadb.pid'}",
            "--innodb-buffer-pool-size=64M", "--skip-name-resolve",
        ])
        sql = ("CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
               "GRANT ALL ON *.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        self._wait(lambda: subprocess.run(["mariadb", f"--socket={sock}", "-uroot", "-e", sql],
                                          capture_output=True).returncode == 0, "mariadbd")

    def _write_configs(self) -> None:
        r = self.root
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        self.conf.write_text(f"""ClusterName={CLUSTER}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ports['ctld']}
SlurmdPort={self.ports['slurmd']}
SlurmUser=root
SlurmdUser=root
{auth}CredType=cred/munge
StateSaveLocation={r / 'ctld'}
SlurmdSpoolDir={r / 'slurmd'}
SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}
SlurmdPidFile={r / 'run' / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports['dbd']}
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=8000 State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
""")
        dbd = r / "etc" / "slurmdbd.conf"
        dbd.write_text(f"""{auth}DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort={self.ports['dbd']}
SlurmUser=root
PidFile={r / 'run' / 'slurmdbd.pid'}
LogFile={r / 'log' / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['mysql']}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)
        srun = self.bin / "srun"
        srun.write_text(f"#!/bin/sh\nexport SLURM_CONF={self.conf}\nexec {shutil.which('srun')} \"$@\"\n")
        srun.chmod(0o755)
