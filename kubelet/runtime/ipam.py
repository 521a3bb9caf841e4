"""Pod IP address management, persisted on disk the way CNI's ``host-local`` plugin does it.

The runtime hands every pod sandbox an IPv4 address from one CIDR and must remember it across restarts (the
kubelet asks for the pod IP long after RunPodSandbox) and across processes (two runtimes pointed at one state
directory must never give one address twice). Like host-local, the state is a directory with one file per
allocated address, named by the address and holding the owner's id, plus ``last_reserved_ip``; a file is created
with ``O_EXCL``, so the filesystem, not a lock, decides who gets an address. Allocation goes round-robin after the
last reserved address, so an address freed a moment ago is not handed to the next pod at once (a client of the old
pod that still holds the address reaches nothing rather than a stranger).

Only IPv4. The first host address is the gateway (the bridge's own address); the network and broadcast addresses
are never handed out.
"""

from __future__ import annotations

import os
import tempfile
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from kubelet.runtime.errors import InvalidArgument, ResourceExhausted

LAST_RESERVED = "last_reserved_ip"


class Ipam:
    """Host-local IPAM over ``state_dir`` for ``cidr`` (e.g. ``"10.88.0.0/24"``).

    Nothing is cached in memory: every call reads the directory, so several instances (or processes) on one
    directory see each other's allocations.
    """

    def __init__(self, state_dir: Path, cidr: str) -> None:
        try:
            network = IPv4Network(cidr)
        except ValueError as err:  # covers a bad address, a bad prefix, host bits set and IPv6 text
            raise InvalidArgument(f"invalid pod CIDR {cidr!r}: {err}") from None
        if network.prefixlen > 30:
            raise InvalidArgument(f"pod CIDR {cidr} is too small: it needs a gateway and at least one pod address")
        self.network = network
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Pool: network+2 … broadcast-1 (network+1 is the gateway).
        self._first = int(network.network_address) + 2
        self._size = int(network.broadcast_address) - self._first

    @property
    def gateway(self) -> IPv4Interface:
        """The gateway with the pool's prefix (``10.88.0.1/24``): the address the bridge carries."""
        return IPv4Interface((self.network.network_address + 1, self.network.prefixlen))

    def allocate(self, owner_id: str) -> IPv4Interface:
        """The address of ``owner_id``: its existing one, else the next free one after the last reserved.

        Raises ResourceExhausted when every pool address is taken (and then writes nothing).
        """
        _check_owner(owner_id)
        existing = self.lookup(owner_id)
        if existing is not None:
            return existing
        last = self._last_reserved()
        start = 0 if last is None else (int(last) - self._first + 1) % self._size
        for step in range(self._size):
            address = IPv4Address(self._first + (start + step) % self._size)
            if self._reserve(address, owner_id):
                self._write_last_reserved(address)
                return IPv4Interface((address, self.network.prefixlen))
        raise ResourceExhausted(f"no free IP in {self.network}")

    def release(self, owner_id: str) -> None:
        """Free every address held by ``owner_id``. Idempotent: an unknown owner is not an error."""
        _check_owner(owner_id)
        for address, owner in self.allocations().items():
            if owner == owner_id:
                (self.state_dir / str(address)).unlink(missing_ok=True)

    def lookup(self, owner_id: str) -> IPv4Interface | None:
        """The address ``owner_id`` holds, or None."""
        for address, owner in sorted(self.allocations().items()):
            if owner == owner_id:
                return IPv4Interface((address, self.network.prefixlen))
        return None

    def allocations(self) -> dict[IPv4Address, str]:
        """Every allocated address and its owner, read from disk.

        An owner is ``""`` for the instant between another process creating the file and writing its id.
        """
        found: dict[IPv4Address, str] = {}
        for entry in os.scandir(self.state_dir):
            address = self._pool_address(entry.name)
            if address is None:
                continue
            try:
                found[address] = Path(entry.path).read_text().partition("\n")[0].strip()
            except FileNotFoundError:  # released while we were reading
                continue
        return found

    def _reserve(self, address: IPv4Address, owner_id: str) -> bool:
        """Create ``state_dir/<address>`` exclusively; False when it already exists (someone holds it)."""
        try:
            fd = os.open(self.state_dir / str(address), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(owner_id)
        return True

    def _last_reserved(self) -> IPv4Address | None:
        try:
            text = (self.state_dir / LAST_RESERVED).read_text().strip()
        except FileNotFoundError:
            return None
        return self._pool_address(text)

    def _write_last_reserved(self, address: IPv4Address) -> None:
        # Atomic replace, so a concurrent reader sees the old or the new address, never a torn one.
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{LAST_RESERVED}.")
        with os.fdopen(fd, "w") as f:
            f.write(str(address))
        os.replace(tmp, self.state_dir / LAST_RESERVED)

    def _pool_address(self, text: str) -> IPv4Address | None:
        """``text`` as an address of the pool, or None (other files, the gateway, out-of-range leftovers)."""
        try:
            address = IPv4Address(text)
        except ValueError:
            return None
        return address if 0 <= int(address) - self._first < self._size else None


def _check_owner(owner_id: str) -> None:
    # The file's first line is the owner, as in host-local (which adds the interface on a second line).
    if not owner_id or owner_id != owner_id.strip() or "\n" in owner_id:
        raise InvalidArgument(f"invalid IPAM owner id {owner_id!r}")
