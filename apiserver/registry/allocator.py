"""Service cluster IPs and node ports, reserved in etcd so that several API servers never hand
out the same one.

Each reservation is a key under ``/registry/kubemini/`` created with create-if-absent; a clash
means "taken": a random pick tries another value, an explicitly requested one is refused with
422. Reservations are made before the Service is written and given back when it is deleted, when
an update stops using them, or when the write that needed them fails. Differences from Kubernetes:
single-stack IPv4 only, and no repair loop for reservations leaked by a crash between two writes.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from apiserver.registry.core.services import needs_cluster_ip, needs_health_check_node_port, needs_node_ports
from apiserver.storage import errors as storage_errors
from apiserver.storage.store import Store
from machinery import errors as api

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORTS = (30000, 32767)
ATTEMPTS = 32

Obj = dict[str, Any]


class ServiceAllocator:
    def __init__(self, storage: Store, cidr: str = DEFAULT_SERVICE_CIDR,
                 node_ports: tuple[int, int] = DEFAULT_NODE_PORTS) -> None:
        self.storage = storage
        self.network = ipaddress.ip_network(cidr)
        self.node_ports = node_ports

    @staticmethod
    def _ip_key(ip: str) -> str:
        return f"/registry/kubemini/serviceips/{ip}"

    @staticmethod
    def _port_key(port: int) -> str:
        return f"/registry/kubemini/servicenodeports/{port}"

    async def allocate(self, svc: Obj, *, dry_run: bool, old: Obj | None = None) -> list[str]:
        """Fill in missing clusterIP/nodePorts and reserve explicitly requested ones that ``old``
        (the stored Service, on an update) does not hold already. Returns the keys reserved now."""
        spec = svc.get("spec") or {}
        held = set(self.keys_of(old)) if old is not None else set()
        claim = _Claim(self, svc, dry_run, held)
        try:
            if needs_cluster_ip(svc):
                ip = await claim.pick(self._random_ip, self._ip_key)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            elif spec.get("clusterIP") not in (None, "", "None") and spec.get("type") != "ExternalName":
                await claim.explicit_ip(spec["clusterIP"])
            missing = set(needs_node_ports(svc))
            for index, port in enumerate(spec.get("ports") or []):
                if index in missing:
                    port["nodePort"] = await claim.pick(self._random_port, self._port_key)
                elif isinstance(port, dict) and port.get("nodePort"):
                    await claim.explicit_port(port["nodePort"], f"spec.ports[{index}].nodePort")
            if needs_health_check_node_port(svc):
                spec["healthCheckNodePort"] = await claim.pick(self._random_port, self._port_key)
            elif spec.get("healthCheckNodePort"):
                await claim.explicit_port(spec["healthCheckNodePort"], "spec.healthCheckNodePort")
        except BaseException:
            await self.release_keys(claim.reserved)
            raise
        return claim.reserved

    def keys_of(self, svc: Obj | None) -> list[str]:
        spec = (svc or {}).get("spec") or {}
        keys = []
        ip = spec.get("clusterIP")
        if ip and ip != "None" and spec.get("type") != "ExternalName":
            keys.append(self._ip_key(ip))
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and isinstance(port.get("nodePort"), int) and port["nodePort"]:
                keys.append(self._port_key(port["nodePort"]))
        if isinstance(spec.get("healthCheckNodePort"), int) and spec["healthCheckNodePort"]:
            keys.append(self._port_key(spec["healthCheckNodePort"]))
        return keys

    def keys_unused(self, new: Obj, old: Obj) -> list[str]:
        """Reservations ``old`` held that ``new`` no longer uses."""
        return sorted(set(self.keys_of(old)) - set(self.keys_of(new)))

    async def release_keys(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.storage.delete(key)
            except storage_errors.NotFound:
                pass

    def _random_ip(self) -> str:
        # skip the network address and the first address (kept for the kubernetes service)
        offset = random.randrange(2, self.network.num_addresses - 1)
        return str(self.network.network_address + offset)

    def _random_port(self) -> int:
        return random.randint(*self.node_ports)


class _Claim:
    """The reservations of one allocation, for one Service."""

    def __init__(self, allocator: ServiceAllocator, svc: Obj, dry_run: bool, held: set[str]) -> None:
        self.allocator = allocator
        meta = svc.get("metadata") or {}
        self.name = meta.get("name", "")
        self.owner = f"{meta.get('namespace')}/{self.name}"
        self.dry_run = dry_run
        self.held = held
        self.reserved: list[str] = []

    async def _take(self, key: str, value: Any) -> bool:
        """Reserve ``key``; False when somebody else holds it."""
        storage = self.allocator.storage
        if self.dry_run:
            try:
                await storage.get(key)
            except storage_errors.NotFound:
                return True
            return False
        try:
            await storage.create(key, {"metadata": {"name": str(value)}, "owner": self.owner})
        except storage_errors.AlreadyExists:
            return False
        self.reserved.append(key)
        return True

    async def pick(self, candidate, key_of):
        for _ in range(ATTEMPTS):
            value = candidate()
            if await self._take(key_of(value), value):
                return value
        raise api.service_unavailable("no free cluster IP or node port could be allocated; try again")

    async def explicit_ip(self, ip: str) -> None:
        key = self.allocator._ip_key(ip)
        if key in self.held:
            return
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return  # validation reports the malformed value
        network = self.allocator.network
        if address not in network:
            self._refuse("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) is not in "
                         f"the valid range. The range of valid IPs is {network}")
        if not await self._take(key, ip):
            self._refuse("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP is already allocated")

    async def explicit_port(self, port: Any, path: str) -> None:
        if not isinstance(port, int):
            return  # validation reports it
        key = self.allocator._port_key(port)
        if key in self.held:
            return
        low, high = self.allocator.node_ports
        if not low <= port <= high:
            self._refuse(path, port, f"provided port is not in the valid range. The range of valid ports is "
                         f"{low}-{high}")
        if not await self._take(key, port):
            self._refuse(path, port, "provided port is already allocated")

    def _refuse(self, path: str, value: Any, detail: str) -> None:
        raise api.invalid("Service", self.name, [api.invalid_value(path, value, detail)])
