"""cgroup v1 with the cgroupfs layout: a container's directories, their limits, joining, signalling and removal.

``linux.cgroupsPath`` names one directory in every v1 hierarchy mounted under /sys/fs/cgroup (this machine has
cpu, cpuacct, cpuset, memory, pids, devices, freezer, blkio and the named systemd one; the v2 mount holds only
hugetlb and is left alone). The limits come from ``linux.resources`` (OCI LinuxResources). Two kernel rules shape
the writes: a new cpuset directory starts with no CPUs or memory nodes, so they are copied down from its
parent, and ``memory.memsw.limit_in_bytes`` must never be below ``memory.limit_in_bytes``, so when the limit grows
memsw is written first and when it shrinks last (lowering below current usage fails with EBUSY; nothing is
killed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time

from kubelet.runtime.process.errors import Failure

CGROUP_ROOT = "/sys/fs/cgroup"
# Allowed in every container whatever its device rules say (runc's default set): the standard character devices,
# the container's own pseudo-terminals, and mknod of any node (using it is still checked).
DEFAULT_DEVICE_RULES = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")


def hierarchies() -> dict[str, str]:
    """Name → mount point of each cgroup v1 hierarchy (``systemd`` for ``name=systemd``)."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            separator = fields.index("-")
            if fields[separator + 1] != "cgroup":
                continue
            mount_point = fields[4]
            found[os.path.basename(mount_point)] = mount_point
    return found


def paths(cgroups_path: str, container_id: str) -> dict[str, str]:
    relative = (cgroups_path or f"/{container_id}").strip("/")
    if not relative or ".." in relative.split("/"):
        raise Failure(f"invalid cgroupsPath {cgroups_path!r}")
    return {name: os.path.join(mount_point, relative) for name, mount_point in hierarchies().items()}


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def create(dirs: dict[str, str]) -> None:
    for name, directory in dirs.items():
        os.makedirs(directory, exist_ok=True)
        if name == "cpuset":
            _inherit_cpuset(directory)


def _inherit_cpuset(directory: str) -> None:
    """Give every empty cpuset directory from the top down to ``directory`` its parent's CPUs and memory nodes."""
    chain = []
    current = directory
    while os.path.exists(os.path.join(os.path.dirname(current), "cpuset.cpus")):
        chain.append(current)
        current = os.path.dirname(current)
    for level in reversed(chain):
        for key in ("cpuset.cpus", "cpuset.mems"):
            if not _read(os.path.join(level, key)):
                _write(os.path.join(level, key), _read(os.path.join(os.path.dirname(level), key)))


def join(dirs: dict[str, str], pid: int) -> None:
    for directory in dirs.values():
        _write(os.path.join(directory, "cgroup.procs"), pid)


def _device_rule(rule: dict) -> str:
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    major = "*" if rule.get("major") in (None, -1) else rule["major"]
    minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def apply_devices(dirs: dict[str, str], rules: list[dict]) -> None:
    """The device rules in order, then the defaults every container gets."""
    directory = dirs.get("devices")
    if directory is None:
        return
    for rule in rules:
        _write(os.path.join(directory, "devices.allow" if rule.get("allow") else "devices.deny"), _device_rule(rule))
    for rule in DEFAULT_DEVICE_RULES:
        _write(os.path.join(directory, "devices.allow"), rule)


def apply(dirs: dict[str, str], resources: dict) -> None:
    """Write OCI LinuxResources (memory, cpu, cpuset, pids, blkio weight) to the container's directories."""
    memory, cpu, pids = resources.get("memory") or {}, resources.get("cpu") or {}, resources.get("pids") or {}
    if memory and "memory" in dirs:
        _apply_memory(dirs["memory"], memory)
    if cpu and "cpu" in dirs:
        for key, file in (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"),
                          ("realtimePeriod", "cpu.rt_period_us"), ("realtimeRuntime", "cpu.rt_runtime_us")):
            if cpu.get(key):
                _write_checked(os.path.join(dirs["cpu"], file), cpu[key], f"cpu {key}")
    if cpu and "cpuset" in dirs:
        for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                _write_checked(os.path.join(dirs["cpuset"], file), cpu[key], f"cpuset {key}")
    if pids.get("limit") and "pids" in dirs:
        limit = pids["limit"]
        _write_checked(os.path.join(dirs["pids"], "pids.max"), "max" if limit < 0 else limit, "pids limit")
    weight = (resources.get("blockIO") or {}).get("weight")
    if weight and "blkio" in dirs and os.path.exists(os.path.join(dirs["blkio"], "blkio.weight")):
        _write_checked(os.path.join(dirs["blkio"], "blkio.weight"), weight, "blkio weight")


def _write_checked(path: str, value, what: str) -> None:
    try:
        _write(path, value)
    except OSError as e:
        raise Failure(f"unable to set {what} to {value}: {e.strerror}") from None


def _apply_memory(directory: str, memory: dict) -> None:
    limit_file = os.path.join(directory, "memory.limit_in_bytes")
    memsw_file = os.path.join(directory, "memory.memsw.limit_in_bytes")
    limit, swap = memory.get("limit"), memory.get("swap")
    has_memsw = os.path.exists(memsw_file)
    writes = []
    if limit:
        writes.append((limit_file, limit, "memory limit"))
    if swap and has_memsw:
        memsw = (swap, memsw_file, "memory+swap limit")
        current = int(_read(limit_file))
        growing = swap == -1 or (limit or 0) == -1 or (limit or current) > current
        writes = [(memsw[1], memsw[0], memsw[2]), *writes] if growing else [*writes, (memsw[1], memsw[0], memsw[2])]
    for path, value, what in writes:
        try:
            _write(path, value)
        except OSError as e:
            if e.errno == errno.EBUSY:
                usage = _read(os.path.join(directory, "memory.usage_in_bytes"))
                peak = _read(os.path.join(directory, "memory.max_usage_in_bytes"))
                raise Failure(f"unable to set {what} to {value} (current usage: {usage}, peak usage: {peak})") \
                    from None
            raise Failure(f"unable to set {what} to {value}: {e.strerror}") from None
    if memory.get("reservation"):
        _write_checked(os.path.join(directory, "memory.soft_limit_in_bytes"), memory["reservation"],
                       "memory reservation")
    if memory.get("swappiness") is not None and memory.get("swappiness", -1) >= 0:
        _write_checked(os.path.join(directory, "memory.swappiness"), memory["swappiness"], "memory swappiness")
    if memory.get("disableOOMKiller"):
        _write_checked(os.path.join(directory, "memory.oom_control"), 1, "oom killer")


def procs(dirs: dict[str, str]) -> list[int]:
    """Every process in the container's cgroups."""
    found: set[int] = set()
    for directory in dirs.values():
        with contextlib.suppress(OSError):
            found.update(int(line) for line in _read(os.path.join(directory, "cgroup.procs")).split())
    return sorted(found)


def _freeze(dirs: dict[str, str], state: str) -> bool:
    directory = dirs.get("freezer")
    if directory is None:
        return False
    try:
        _write(os.path.join(directory, "freezer.state"), state)
        deadline = time.monotonic() + 1.0
        while state == "FROZEN" and _read(os.path.join(directory, "freezer.state")) != "FROZEN":
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
    except OSError:
        return False
    return True


def signal_all(dirs: dict[str, str], signum: int) -> None:
    """Signal every process in the cgroup, frozen meanwhile so that none forks away from the signal."""
    frozen = _freeze(dirs, "FROZEN")
    try:
        for pid in procs(dirs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
    finally:
        if frozen:
            _freeze(dirs, "THAWED")


def remove(dirs: dict[str, str], timeout: float = 5.0) -> None:
    """rmdir every directory, waiting for dying processes to leave them."""
    deadline = time.monotonic() + timeout
    for directory in dirs.values():
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise Failure(f"unable to remove cgroup {directory}: {e.strerror}") from None
                time.sleep(0.01)
