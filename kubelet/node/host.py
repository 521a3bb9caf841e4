"""Facts about the machine the node agent runs on: CPUs, memory, disks, PIDs, identity, addresses.

The Node object's capacity, nodeInfo and pressure conditions are all derived from these. They sit behind
the :class:`HostFacts` protocol so unit tests can feed any machine (a full disk, no free memory) through a
fake, while :class:`LinuxHost` reads the real one from ``/proc``, ``/sys``, ``/etc`` and ``statvfs``.
Reads are tiny synchronous file reads; a fact that cannot be read degrades (``None`` or an empty
string), never raises.
"""

from __future__ import annotations

import fcntl
import os
import platform
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SIOCGIFADDR = 0x8915  # ioctl: an interface's IPv4 address
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
                 "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
                 "riscv64": "riscv64"}


@dataclass(frozen=True)
class MemoryStats:
    total_bytes: int
    available_bytes: int  # /proc/meminfo MemAvailable
    swap_total_bytes: int = 0


@dataclass(frozen=True)
class FsStats:
    capacity_bytes: int
    available_bytes: int  # to unprivileged users (f_bavail), as the kubelet's eviction signals use
    inodes: int
    inodes_free: int


@dataclass(frozen=True)
class PidStats:
    max: int  # /proc/sys/kernel/pid_max
    in_use: int  # processes and threads now


@dataclass(frozen=True)
class SystemIdentity:
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str  # GOARCH spelling: amd64, arm64, ...


class HostFacts(Protocol):
    """What the node agent needs to know about its machine (implementations must not raise)."""

    def cpu_count(self) -> int: ...
    def memory(self) -> MemoryStats: ...
    def filesystem(self, path: Path) -> FsStats | None: ...
    def pids(self) -> PidStats | None: ...
    def identity(self) -> SystemIdentity: ...
    def default_ip(self) -> str | None: ...


class LinuxHost:
    """The real machine. ``proc``/``etc``/``sys`` are parameters so tests can point at fixture trees."""

    def __init__(self, proc: Path = Path("/proc"), etc: Path = Path("/etc"), sys: Path = Path("/sys")) -> None:
        self.proc = proc
        self.etc = etc
        self.sys = sys

    def cpu_count(self) -> int:
        """The CPUs this process may run on (a cpuset-limited container sees its share), at least 1."""
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)

    def memory(self) -> MemoryStats:
        info = parse_meminfo(_read(self.proc / "meminfo"))
        total = info.get("MemTotal", 0)
        return MemoryStats(total, info.get("MemAvailable", info.get("MemFree", total)), info.get("SwapTotal", 0))

    def filesystem(self, path: Path) -> FsStats | None:
        """Sizes of the filesystem holding ``path`` (or its nearest existing parent)."""
        target = Path(path)
        while not target.exists() and target != target.parent:
            target = target.parent
        try:
            st = os.statvfs(target)
        except OSError:
            return None
        return FsStats(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files, st.f_ffree)

    def pids(self) -> PidStats | None:
        """pid_max and the kernel's count of scheduling entities (the 4th field of /proc/loadavg, ``r/total``)."""
        pid_max = _read(self.proc / "sys/kernel/pid_max").strip()
        fields = _read(self.proc / "loadavg").split()
        if not pid_max.isdigit() or len(fields) < 4 or "/" not in fields[3]:
            return None
        total = fields[3].partition("/")[2]
        return PidStats(int(pid_max), int(total)) if total.isdigit() else None

    def identity(self) -> SystemIdentity:
        machine_id = (_read(self.etc / "machine-id") or _read(Path("/var/lib/dbus/machine-id"))).strip()
        system_uuid = _read(self.sys / "class/dmi/id/product_uuid").strip().lower() or machine_id
        return SystemIdentity(
            machine_id=machine_id,
            system_uuid=system_uuid,
            boot_id=_read(self.proc / "sys/kernel/random/boot_id").strip(),
            kernel_version=platform.release(),
            os_image=os_release_name(_read(self.etc / "os-release")),
            architecture=go_arch(platform.machine()),
        )

    def default_ip(self) -> str | None:
        """The IPv4 address of the interface the default route leaves by (IPv6-only hosts: None)."""
        iface = default_route_interface(_read(self.proc / "net/route"))
        return interface_ipv4(iface) if iface else None


# --- parsers (pure) -----------------------------------------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per field (the file says ``kB``, meaning KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return values


def os_release_name(text: str) -> str:
    """PRETTY_NAME from ``/etc/os-release`` (unquoted), else ``Linux``."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "PRETTY_NAME":
            return value.strip().strip("'\"") or "Linux"
    return "Linux"


def go_arch(machine: str) -> str:
    """``platform.machine()`` in Go's GOARCH spelling (what kubernetes.io/arch carries)."""
    return ARCHITECTURES.get(machine.lower(), machine.lower() or "unknown")


def default_route_interface(route_table: str) -> str | None:
    """The interface of the lowest-metric default route in ``/proc/net/route``."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        try:
            flags, metric = int(fields[3], 16), int(fields[6])
        except ValueError:
            continue
        if flags & 0x1 and (best is None or metric < best[0]):  # RTF_UP
            best = (metric, fields[0])
    return best[1] if best else None


def interface_ipv4(iface: str) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", iface[:15].encode()))
    except OSError:
        return None
    return socket.inet_ntoa(packed[20:24])


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
