"""Pod networking: one network namespace per pod sandbox, wired by a veth pair to one Linux bridge.

This is what CNI's ``bridge`` + ``host-local`` plugins do for containerd, done in-process so the runtime needs no
CNI binaries or config: ``setup`` makes a named netns (``/run/netns/<prefix>n-<id>``, which runc
containers join by path), a veth pair whose host end is a bridge port and whose pod end is ``eth0`` inside the netns,
an address from :class:`~kubelet.runtime.ipam.Ipam` and a default route via the bridge. Pods on one bridge reach
each other at layer 2, and the host reaches them through the bridge's route; nothing here touches iptables, the
host's other interfaces or routes. hostNetwork pods never come here.

``setup`` runs in a fresh thread of the runtime (``namespaces.py``): it unshares a network namespace, pins it on the
netns file, makes the veth pair from inside it with the host end in the runtime's namespace, configures ``lo``,
``eth0``, the address and the route there over rtnetlink (``netlink.py``), then returns to the runtime's namespace
to put the host end on the bridge — no process is started, where two ``ip -batch`` runs per pod were about 7% of a
busy node's CPU at pod start-up. The bridge and teardown, rarer, still use one ``ip -batch`` run each (teardown
~35 ms, most of it the kernel deleting the veth).

Whether a sandbox is set up is decided by a record file written last, so a crash in the middle leaves no record and
the next ``setup`` or ``teardown`` clears the leftovers.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from kubelet.runtime import namespaces
from kubelet.runtime.errors import InvalidArgument, RuntimeFailure
from kubelet.runtime.ipam import Ipam
from kubelet.runtime.netlink import Netlink

NETNS_DIR = Path("/run/netns")
SYS_NET = Path("/sys/class/net")  # the links of the host netns, which is where this process runs
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
POD_INTERFACE = "eth0"
MAX_IFNAME = 15  # IFNAMSIZ - 1

_SANDBOX_ID = re.compile(r"[0-9a-f]{12,128}")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,5}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_MNT_DETACH = 2


@dataclass(frozen=True)
class PodAttachment:
    """Where a sandbox's network lives: the netns to join, its address (with prefix) and gateway."""

    netns_path: str
    ip: IPv4Interface
    gateway: IPv4Address
    interface: str = POD_INTERFACE


class PodNetwork:
    """Pod networks on ``bridge`` with addresses from ``cidr``; state (IPAM, records) under ``state_dir``.

    ``prefix`` names everything this instance creates: netns ``<prefix>n-<12 hex of id>`` and host-side veths
    ``<prefix>v<hex of id>`` (≤ 15 characters), so tests with their own prefix, bridge and CIDR never touch a real
    runtime's pods.
    """

    def __init__(self, state_dir: Path, cidr: str, bridge: str = "kubemini0", *, prefix: str = "km",
                 mtu: int = 1500) -> None:
        if not _IFNAME.fullmatch(bridge):
            raise InvalidArgument(f"invalid bridge name {bridge!r}: 1-15 of [A-Za-z0-9_.-]")
        if not _PREFIX.fullmatch(prefix):
            raise InvalidArgument(f"invalid name prefix {prefix!r}: a lowercase letter then up to 5 of [a-z0-9]")
        if not 68 <= mtu <= 65535:
            raise InvalidArgument(f"invalid MTU {mtu}: must be 68-65535")
        self.bridge = bridge
        self.prefix = prefix
        self.mtu = mtu
        self.ipam = Ipam(Path(state_dir) / "ipam", cidr)
        self._records = Path(state_dir) / "sandboxes"
        self._records.mkdir(parents=True, exist_ok=True)
        self._bridge_lock = asyncio.Lock()
        self._bridge_ready = False

    # -- names ------------------------------------------------------------------------------------------------

    def netns_name(self, sandbox_id: str) -> str:
        return f"{self.prefix}n-{_check_id(sandbox_id)[:12]}"

    def netns_path(self, sandbox_id: str) -> Path:
        return NETNS_DIR / self.netns_name(sandbox_id)

    def veth_name(self, sandbox_id: str) -> str:
        """The host end: ``kmv`` + 11 hex with the default prefix; fewer hex digits for a longer prefix."""
        digits = min(11, MAX_IFNAME - len(self.prefix) - 1)
        return f"{self.prefix}v{_check_id(sandbox_id)[:digits]}"

    def interface_stats(self, sandbox_id: str) -> tuple[int, int] | None:
        """The pod's (rx_bytes, tx_bytes), read from the host end of its veth (whose rx is the pod's tx)."""
        stats = SYS_NET / self.veth_name(sandbox_id) / "statistics"
        try:
            host_rx = int((stats / "rx_bytes").read_text())
            host_tx = int((stats / "tx_bytes").read_text())
        except (OSError, ValueError):
            return None
        return host_tx, host_rx

    # -- the bridge ---------------------------------------------------------------------------------------------

    async def ensure_bridge(self, *, ip_forward: bool = False) -> None:
        """Create the bridge if missing, give it the gateway address, bring it up. Idempotent.

        ``ip_forward`` also sets net.ipv4.ip_forward=1, which only routing off the bridge needs (pod↔pod on one
        bridge and host↔pod do not), so it is left alone unless asked.
        """
        async with self._bridge_lock:
            lines = []
            if not (SYS_NET / self.bridge).exists():
                lines.append(f"link add {self.bridge} type bridge")
            elif not (SYS_NET / self.bridge / "bridge").is_dir():
                raise RuntimeFailure(f"link {self.bridge} exists and is not a bridge")
            lines += [f"addr replace {self.ipam.gateway} dev {self.bridge}", f"link set {self.bridge} up"]
            await _batch(lines)
            if ip_forward:
                _enable_ip_forward()
            self._bridge_ready = True

    def bridge_up(self) -> bool:
        """Whether the bridge exists and is administratively up (read from sysfs: no process, no netlink)."""
        try:
            return int((SYS_NET / self.bridge / "flags").read_text(), 16) & 0x1 == 1  # IFF_UP
        except (OSError, ValueError):
            return False

    async def remove_bridge(self) -> None:
        """Delete the bridge (tests, ``kubemini down``). Idempotent. Pods still on it lose their uplink."""
        async with self._bridge_lock:
            self._bridge_ready = False
            if (SYS_NET / self.bridge).exists():
                await _batch([f"link del {self.bridge}"], tolerate=("Cannot find device",))

    # -- pods ---------------------------------------------------------------------------------------------------

    async def setup(self, sandbox_id: str, hostname: str | None = None) -> PodAttachment:
        """Give ``sandbox_id`` a netns with ``eth0`` on the bridge, an address and a default route.

        Idempotent: a sandbox already set up gets its attachment back unchanged. On any failure everything this
        call (or an earlier crashed one) made is undone before the error propagates. ``hostname`` becomes the
        host-side veth's alias, so ``ip link`` shows which pod a veth belongs to.
        """
        existing = self.status(sandbox_id)
        if existing is not None:
            return existing
        if hostname is not None and not _HOSTNAME.fullmatch(hostname):
            raise InvalidArgument(f"invalid pod hostname {hostname!r}")
        if not self._bridge_ready:
            await self.ensure_bridge()
        try:
            await self._remove_devices(sandbox_id)  # leftovers of a crashed setup; nothing to do normally
            ip = self.ipam.allocate(sandbox_id)
            gateway = self.ipam.gateway.ip
            await namespaces.in_fresh_thread(self._wire, self.netns_path(sandbox_id), self.veth_name(sandbox_id), ip,
                                             gateway, hostname)
            attachment = PodAttachment(str(self.netns_path(sandbox_id)), ip, gateway)
            self._write_record(sandbox_id, attachment)
        except BaseException as err:
            try:
                await self.teardown(sandbox_id)
            except Exception as undo_err:  # report the original failure; the leftover is retried by teardown
                err.add_note(f"undoing the partial setup also failed: {undo_err}")
            raise
        return attachment

    async def teardown(self, sandbox_id: str) -> None:
        """Remove the sandbox's veth, netns (and any nsfs mount left of it) and release its IP.

        Idempotent: parts already gone are skipped, and a sandbox never set up is not an error.
        """
        (self._records / f"{_check_id(sandbox_id)}.json").unlink(missing_ok=True)
        await self._remove_devices(sandbox_id)
        self.ipam.release(sandbox_id)

    def status(self, sandbox_id: str) -> PodAttachment | None:
        """The attachment of a set-up sandbox, from disk (valid after a runtime restart), else None."""
        try:
            record = json.loads((self._records / f"{_check_id(sandbox_id)}.json").read_text())
        except FileNotFoundError:
            return None
        return PodAttachment(record["netns_path"], IPv4Interface(record["ip"]), IPv4Address(record["gateway"]),
                             record["interface"])

    def leaked(self) -> list[str]:
        """This prefix's netns files, nsfs mounts and host links that exist now (tests assert it is empty)."""
        netns_prefix, veth_prefix = f"{self.prefix}n-", f"{self.prefix}v"
        found = [f"netns {name}" for name in _listdir(NETNS_DIR) if name.startswith(netns_prefix)]
        found += [f"mount {path}" for path in _mount_points()
                  if path.parent == NETNS_DIR and path.name.startswith(netns_prefix)]
        found += [f"link {name}" for name in _listdir(SYS_NET) if name.startswith(veth_prefix) and name != self.bridge]
        return sorted(found)

    # -- helpers ------------------------------------------------------------------------------------------------

    async def _remove_devices(self, sandbox_id: str) -> None:
        """Delete the host veth (its peer goes with it) and the netns; unmount nsfs copies. Idempotent."""
        veth, netns, path = self.veth_name(sandbox_id), self.netns_name(sandbox_id), self.netns_path(sandbox_id)
        lines = []
        if (SYS_NET / veth).exists():
            lines.append(f"link del {veth}")
        if path.exists():
            lines.append(f"netns del {netns}")
        if lines:
            # "namespace file" errors (busy mount) are finished below, where the result is checked.
            await _batch(lines, force=True, tolerate=("Cannot find device", "namespace file"))
        if not path.exists():
            return  # the usual case, and no mount point either: no need to read the mount table
        _unmount_all(path)
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise RuntimeFailure(f"cannot remove {path}: {err}") from None

    def _wire(self, netns: Path, veth: str, ip: IPv4Interface, gateway: IPv4Address, alias: str | None) -> None:
        """In a thread of its own: a new netns pinned on ``netns``, ``eth0`` with ``ip`` and a default route via
        ``gateway`` inside it, its peer ``veth`` on the bridge outside."""
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        runtime_netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                namespaces.pin({"net": netns})
                with Netlink() as pod_side:
                    pod_side.add_veth(POD_INTERFACE, veth, runtime_netns, self.mtu)
                    pod_side.set_up("lo")
                    pod_side.add_address(POD_INTERFACE, ip)
                    pod_side.set_up(POD_INTERFACE)
                    pod_side.add_default_route(gateway, POD_INTERFACE)
            finally:
                namespaces.enter(runtime_netns, "net")
            with Netlink() as host_side:
                host_side.set_up(veth, master=self.bridge, alias=alias)
        except OSError as err:
            raise RuntimeFailure(f"pod network in {netns.name}: {err.strerror or err}") from None
        finally:
            os.close(runtime_netns)

    def _write_record(self, sandbox_id: str, attachment: PodAttachment) -> None:
        record = {"netns_path": attachment.netns_path, "ip": str(attachment.ip),
                  "gateway": str(attachment.gateway), "interface": attachment.interface}
        fd, tmp = tempfile.mkstemp(dir=self._records, prefix=".tmp.")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self._records / f"{sandbox_id}.json")


class _IpError(RuntimeFailure):
    """``ip`` exited non-zero; ``stderr`` is what it said."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


async def _ip(*args: str, stdin: str | None = None) -> str:
    """Run ``ip *args`` (feeding ``stdin``) and return its stdout; RuntimeFailure with ip's stderr on failure."""
    binary = shutil.which("ip")
    if binary is None:
        raise RuntimeFailure("iproute2's ip is not installed")
    proc = await asyncio.create_subprocess_exec(
        binary, *args, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    except BaseException:  # cancelled: do not leave ip running behind the caller's cleanup
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        stderr = err.decode(errors="replace").strip()
        raise _IpError(f"ip {' '.join(args)} failed: {stderr}", stderr)
    return out.decode()


async def _batch(lines: list[str], *, netns: str | None = None, force: bool = False,
                 tolerate: tuple[str, ...] = ()) -> None:
    """Run ``lines`` in one ``ip -batch -`` (inside ``netns`` if given).

    ``force`` runs every line even after a failure; errors whose text contains one of ``tolerate`` are ignored.
    The raised error names the failing command, not just ip's line number.
    """
    args = (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    try:
        await _ip(*args, stdin="\n".join(lines) + "\n")
    except _IpError as err:
        errors = [line for line in err.stderr.splitlines()
                  if not line.startswith("Command failed") and not any(t in line for t in tolerate)]
        if not errors:
            return
        failed = [lines[int(n) - 1] for n in re.findall(r"Command failed -:(\d+)", err.stderr)
                  if 0 < int(n) <= len(lines)]
        where = f" in netns {netns}" if netns else ""
        raise RuntimeFailure(f"ip{where}: {'; '.join(errors)} (running: {'; '.join(failed) or lines})") from None


def _enable_ip_forward() -> None:
    if IP_FORWARD.read_text().strip() != "1":
        IP_FORWARD.write_text("1")


def _check_id(sandbox_id: str) -> str:
    if not isinstance(sandbox_id, str) or not _SANDBOX_ID.fullmatch(sandbox_id):
        raise InvalidArgument(f"invalid sandbox id {sandbox_id!r}: expected 12-128 lowercase hex digits")
    return sandbox_id


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _mount_points() -> list[Path]:
    with open("/proc/self/mountinfo") as f:  # field 5 is the mount point, with spaces etc. octal-escaped
        return [Path(line.split()[4].encode().decode("unicode_escape")) for line in f]


def _unmount_all(path: Path) -> None:
    """Unmount ``path`` until it is no mount point: ``ip netns del`` can leave nsfs copies from propagation."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(64):
        if path not in _mount_points():
            return
        if libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
            errno = ctypes.get_errno()
            raise RuntimeFailure(f"cannot unmount {path}: {os.strerror(errno)}")
    raise RuntimeFailure(f"{path} is still mounted after 64 unmounts")
