"""What ``kubemini up`` leaves in its data dir, so that later commands (down, status, logs, image, etcd) find it.

Two files, both JSON:

- ``<data-dir>/pids.json`` — ``{component: pid}`` in *reverse* start order, rewritten after every component
  starts (so a half-finished ``up`` can still be taken down). It exists exactly while the cluster runs;
  ``down`` deletes it.
- ``<data-dir>/cluster.json`` — the cluster's shape: API server URL, etcd members (names, data dirs, ports),
  kubeconfig, each component's log file and URL, and each node's name, runtime root/socket, bridge and pod CIDR.
  It outlives ``down`` so that ``logs``, ``image load`` and the next ``up`` (same etcd ports) can use it.

Also the process helpers every command shares: is a pid alive (reaping our own zombies), stop a pid politely.
Simplification: a pid is trusted as ours while it is alive; a pid reused by an unrelated process after a crash is
not detected (Kubernetes has no equivalent; systemd would use cgroups).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PIDS_FILE = "pids.json"
CLUSTER_FILE = "cluster.json"


@dataclass
class ComponentRecord:
    name: str
    log: str
    url: str = ""


@dataclass
class NodeRecord:
    name: str
    runtime_root: str
    runtime_socket: str
    bridge: str
    pod_cidr: str
    runtime: str = "runc"  # the --runtime it was started with: runc, process (kubemini's runtime) or containerd


@dataclass
class EtcdMemberRecord:
    """An etcd member's name, data dir and ports: a 3-member cluster must keep its peer ports across ``up``s."""

    name: str
    data_dir: str
    client_port: int
    peer_port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


@dataclass
class ClusterRecord:
    api_url: str = ""
    kubeconfig: str = ""
    etcd_members: list[EtcdMemberRecord] = field(default_factory=list)
    components: list[ComponentRecord] = field(default_factory=list)
    nodes: list[NodeRecord] = field(default_factory=list)

    @property
    def etcd_endpoints(self) -> list[str]:
        return [m.endpoint for m in self.etcd_members]

    def component(self, name: str) -> ComponentRecord | None:
        return next((c for c in self.components if c.name == name), None)


def write_cluster(data_dir: Path, record: ClusterRecord) -> None:
    _write_json(data_dir / CLUSTER_FILE, asdict(record))


def read_cluster(data_dir: Path) -> ClusterRecord | None:
    """The recorded cluster, or None if ``up`` never ran here (or the file is unreadable)."""
    try:
        raw = json.loads((data_dir / CLUSTER_FILE).read_text())
        return ClusterRecord(
            api_url=raw.get("api_url", ""), kubeconfig=raw.get("kubeconfig", ""),
            etcd_members=[EtcdMemberRecord(**m) for m in raw.get("etcd_members", [])],
            components=[ComponentRecord(**c) for c in raw.get("components", [])],
            nodes=[NodeRecord(**n) for n in raw.get("nodes", [])])
    except (OSError, ValueError, TypeError):
        return None


def read_pids(data_dir: Path) -> dict[str, int]:
    """``{component: pid}`` in reverse start order; empty when nothing was started here."""
    try:
        raw = json.loads((data_dir / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)} if isinstance(raw, dict) else {}


def write_pids(data_dir: Path, pids: dict[str, int]) -> None:
    _write_json(data_dir / PIDS_FILE, pids)


def remove_pids(data_dir: Path) -> None:
    (data_dir / PIDS_FILE).unlink(missing_ok=True)


def running_pids(data_dir: Path) -> dict[str, int]:
    """The recorded components that are still alive."""
    return {name: pid for name, pid in read_pids(data_dir).items() if alive(pid)}


def _write_json(path: Path, data: object) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie child of ours is reaped and counts as gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass  # not our child: only kill(0) can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A dead process its (foreign) parent has not reaped yet: gone for our purposes."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop_pids(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM them all at once, then SIGKILL (each one's process group) whatever is left after ``grace`` s."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in [p for p in pids if alive(p)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # every component leads its own session/group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def stop_pid(pid: int, grace: float = 10.0) -> None:
    stop_pids([pid], grace)
