"""Start and stop a real etcd (one member or a local 3-member cluster) as child processes.

Tests, `make up` and `kubemini up` need a real etcd with explicit URLs, a private data dir and
progress notifications every second (the watch cache's bookmarks rely on them). This module owns
the command line and the lifecycle: free ports, logs in ``<data_dir>/etcd.log``, readiness through
the client port's ``/health``, SIGTERM then SIGKILL, and for clusters stopping followers before
the leader (a leader stopped together with its followers waits ~7 s on a leadership transfer).
It uses only the standard library so it never depends on the API server's etcd client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

from kubemini.ports import free_port

PROGRESS_NOTIFY_INTERVAL = "1s"
STOP_GRACE_SECONDS = 5.0


class EtcdNotInstalledError(RuntimeError):
    """No etcd binary on this machine."""


class EtcdStartError(RuntimeError):
    """etcd exited or did not become healthy in time; the message carries its log tail."""


def etcd_binary() -> str:
    """The etcd executable: ``etcd`` on PATH, else Debian's ``/usr/bin/etcd``."""
    found = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None)
    if not found:
        raise EtcdNotInstalledError(
            "etcd is not installed: run `apt-get install etcd-server etcd-client` (or `make deps`)"
        )
    return found


def is_leader(endpoint: str) -> bool:
    """Whether the member serving ``endpoint`` is the raft leader (asks the v3 JSON gateway for Status)."""
    req = urllib.request.Request(f"{endpoint}/v3/maintenance/status", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=1.0) as resp:
            status = json.load(resp)
    except (OSError, ValueError):
        return False
    leader = status.get("leader")
    return bool(leader) and leader == status.get("header", {}).get("member_id")


class EtcdServer:
    """One etcd member as a child process. Not thread-safe; start() and stop() are idempotent."""

    def __init__(
        self,
        data_dir: Path,
        *,
        client_port: int | None = None,
        peer_port: int | None = None,
        name: str = "default",
        extra_args: Sequence[str] = (),
        initial_cluster: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        self.extra_args = tuple(extra_args)
        # "name=peer_url,..." for a member of a cluster; a single member names only itself.
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "etcd.log"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return [
            etcd_binary(),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            "--logger=zap",
            "--log-outputs=stderr",
            f"--experimental-watch-progress-notify-interval={PROGRESS_NOTIFY_INTERVAL}",
            *self.extra_args,
        ]

    def launch(self) -> None:
        """Start the process without waiting for it to be healthy (cluster members need each other)."""
        if self.running():
            return
        cmd = self.command()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                      start_new_session=True)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll ``/health`` on the client port until etcd answers healthy (it has a leader)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise EtcdStartError(f"etcd {self.name} exited with {code}:\n{self.log_tail()}")
            if self.healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EtcdStartError(f"etcd {self.name} not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def start(self, timeout: float = 10.0) -> Self:
        self.launch()
        self.wait_ready(timeout)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1.0) as resp:
                return bool(json.load(resp).get("health") == "true")
        except (OSError, ValueError):
            return False

    def is_leader(self) -> bool:
        return is_leader(self.endpoint)

    def kill(self) -> None:
        """SIGKILL: the member vanishes as in a crash."""
        self.stop(grace=0.0)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (0 kills at once)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                proc.wait(timeout=grace if grace > 0 else None)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class MemberSpec:
    """One member of a cluster to start: its name, data dir and the ports it listens on."""

    name: str
    data_dir: Path
    client_port: int
    peer_port: int

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


def initial_cluster(specs: Sequence[MemberSpec]) -> str:
    """etcd's ``--initial-cluster`` value: ``name=peer_url,...``."""
    return ",".join(f"{s.name}={s.peer_url}" for s in specs)


def cluster_members(specs: Sequence[MemberSpec], *, token: str, extra_args: Sequence[str] = ()) -> list[EtcdServer]:
    """The members of one new cluster (``--initial-cluster*`` flags are ignored once a member has data)."""
    args = ["--initial-cluster-state=new", f"--initial-cluster-token={token}", *extra_args]
    everyone = initial_cluster(specs)
    return [EtcdServer(s.data_dir, name=s.name, client_port=s.client_port, peer_port=s.peer_port,
                       initial_cluster=everyone, extra_args=args) for s in specs]


class EtcdCluster:
    """A local cluster of members (by default ``size`` fresh ones under ``base_dir/<name>``), for failover."""

    def __init__(self, base_dir: Path, *, size: int = 3, extra_args: Sequence[str] = (),
                 members: Sequence[EtcdServer] | None = None) -> None:
        if members is None:
            specs = [MemberSpec(f"m{i}", Path(base_dir) / f"m{i}", free_port(), free_port()) for i in range(size)]
            members = cluster_members(specs, token=f"kubemini-{os.getpid()}-{specs[0].peer_port}",
                                      extra_args=extra_args)
        self.members = list(members)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 10.0) -> Self:
        for member in self.members:
            member.launch()
        try:
            for member in self.members:
                member.wait_ready(timeout)
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def leader_index(self) -> int | None:
        return next((i for i, m in enumerate(self.members) if m.running() and m.is_leader()), None)

    def kill(self, member_index: int) -> None:
        self.members[member_index].kill()

    def stop(self, *, kill: bool = False) -> None:
        """Stop every member: followers first, then the leader; ``kill`` SIGKILLs all at once."""
        if kill:
            for member in self.members:
                member.kill()
            return
        leader = self.leader_index()
        order = [m for i, m in enumerate(self.members) if i != leader]
        if leader is not None:
            order.append(self.members[leader])
        for member in order:
            member.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
