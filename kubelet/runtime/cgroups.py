"""Reading (and cleaning up) cgroup v1 directories for containers: usage, OOM counter, live limits.

runc creates each container's cgroup from the OCI spec and changes its limits (``runc update``); this module is
what the runtime reads back: CPU and memory usage for the stats RPCs, the memory controller's ``oom_kill`` counter
that turns an exit into reason OOMKilled, and the limits actually in force. It also removes the empty
directories runc leaves behind for a sandbox's cgroup parent. The machine uses cgroup v1 with the cgroupfs layout
(see the reference notes: v2 holds only hugetlb here), so paths are ``/sys/fs/cgroup/<controller>/<cgroupsPath>``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio")
# runc also makes the directory in the named systemd hierarchy and in the (hugetlb-only) v2 one.
HIERARCHIES = (*CONTROLLERS, "systemd", "unified")


def controller_dir(controller: str, cgroup_path: str) -> Path:
    return CGROUP_ROOT / controller / cgroup_path.lstrip("/")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    """A ``key value`` per line file (memory.stat, memory.oom_control)."""
    values: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def oom_kills(cgroup_path: str) -> int:
    """How many processes the kernel's memory cgroup OOM killer has killed in this cgroup (0 if it is gone)."""
    return _read_keyed(controller_dir("memory", cgroup_path) / "memory.oom_control").get("oom_kill", 0)


@dataclass(frozen=True)
class Usage:
    """One reading of a cgroup's counters; ``None`` where the file was missing (cgroup already removed)."""

    cpu_ns: int | None
    memory_usage: int | None
    working_set: int | None
    rss: int | None
    page_faults: int | None
    major_page_faults: int | None
    memory_limit: int | None
    pids: int | None


def usage(cgroup_path: str) -> Usage:
    memory = controller_dir("memory", cgroup_path)
    stat = _read_keyed(memory / "memory.stat")
    used = _read_int(memory / "memory.usage_in_bytes")
    # The working set is what the kubelet evicts on: usage minus the inactive file cache (cadvisor's definition).
    working_set = None if used is None else max(0, used - stat.get("total_inactive_file", 0))
    return Usage(
        cpu_ns=_read_int(controller_dir("cpuacct", cgroup_path) / "cpuacct.usage"),
        memory_usage=used,
        working_set=working_set,
        rss=stat.get("total_rss"),
        page_faults=stat.get("total_pgfault"),
        major_page_faults=stat.get("total_pgmajfault"),
        memory_limit=_read_int(memory / "memory.limit_in_bytes"),
        pids=_read_int(controller_dir("pids", cgroup_path) / "pids.current"),
    )


def limits(cgroup_path: str) -> dict[str, int | str | None]:
    """The limits in force, as the kernel reports them (tests and ContainerStatus read these)."""
    cpu = controller_dir("cpu", cgroup_path)
    return {
        "cpu_shares": _read_int(cpu / "cpu.shares"),
        "cpu_quota": _read_int(cpu / "cpu.cfs_quota_us"),
        "cpu_period": _read_int(cpu / "cpu.cfs_period_us"),
        "memory_limit": _read_int(controller_dir("memory", cgroup_path) / "memory.limit_in_bytes"),
        "pids_max": (_read(controller_dir("pids", cgroup_path) / "pids.max") or "").strip() or None,
        "cpuset_cpus": (_read(controller_dir("cpuset", cgroup_path) / "cpuset.cpus") or "").strip() or None,
    }


def exists(cgroup_path: str) -> bool:
    return any(controller_dir(c, cgroup_path).is_dir() for c in CONTROLLERS)


def remove_empty(cgroup_path: str) -> None:
    """Remove the cgroup directory in every controller if it has no processes and no children (idempotent)."""
    for controller in HIERARCHIES:
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(controller_dir(controller, cgroup_path))


def leaked(prefix: str) -> list[str]:
    """Directories under ``prefix`` in any controller — tests assert a removed pod leaves none."""
    found = []
    for controller in HIERARCHIES:
        base = controller_dir(controller, prefix)
        if base.is_dir():
            found.extend(str(p) for p in base.rglob("*") if p.is_dir())
    return sorted(found)
