"""Service cluster IPs and node ports, reserved in etcd so that several API servers never hand
out the same one.

Each reservation is a key under ``/registry/kubemini/`` created with create-if-absent; a clash
means "taken, try another". Reservations are made before the Service is stored and released when
it is deleted (or when the write that needed them fails). Differences from Kubernetes: single-stack
IPv4 only, and no repair loop for reservations leaked by a crash between the two writes.
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

    async def allocate(self, svc: Obj, *, dry_run: bool) -> list[str]:
        """Fill in missing clusterIP/nodePorts (and reserve explicit ones). Returns reserved keys."""
        spec = svc.get("spec") or {}
        owner = f"{svc['metadata'].get('namespace')}/{svc['metadata'].get('name')}"
        reserved: list[str] = []
        try:
            if needs_cluster_ip(svc):
                ip = await self._pick(self._random_ip, self._ip_key, owner, reserved, dry_run)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            elif spec.get("clusterIP") not in (None, "", "None") and spec.get("type") != "ExternalName":
                await self._reserve_explicit_ip(spec["clusterIP"], owner, reserved, dry_run)
            for index in needs_node_ports(svc):
                port = await self._pick(self._random_port, self._port_key, owner, reserved, dry_run)
                spec["ports"][index]["nodePort"] = port
            if needs_health_check_node_port(svc):
                spec["healthCheckNodePort"] = await self._pick(
                    self._random_port, self._port_key, owner, reserved, dry_run)
        except BaseException:
            await self.release_keys(reserved)
            raise
        return reserved

    async def allocate_update(self, new: Obj, old: Obj, *, dry_run: bool) -> list[str]:
        """An update may need new node ports (e.g. ClusterIP → NodePort) or a first cluster IP."""
        return await self.allocate(new, dry_run=dry_run) if needs_cluster_ip(new) or needs_node_ports(new) else []

    async def release(self, svc: Obj) -> None:
        await self.release_keys(self.keys_of(svc))

    async def release_unused(self, new: Obj, old: Obj) -> None:
        await self.release_keys(sorted(set(self.keys_of(old)) - set(self.keys_of(new))))

    def keys_of(self, svc: Obj) -> list[str]:
        spec = svc.get("spec") or {}
        keys = []
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            keys.append(self._ip_key(ip))
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and port.get("nodePort"):
                keys.append(self._port_key(port["nodePort"]))
        if spec.get("healthCheckNodePort"):
            keys.append(self._port_key(spec["healthCheckNodePort"]))
        return keys

    async def release_keys(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.storage.delete(key)
            except storage_errors.NotFound:
                pass

    # --- internals ----------------------------------------------------------------------------------

    def _random_ip(self) -> str:
        # skip the network address and the first address (kept for the kubernetes service)
        offset = random.randrange(2, self.network.num_addresses - 1)
        return str(self.network.network_address + offset)

    def _random_port(self) -> int:
        return random.randint(*self.node_ports)

    async def _pick(self, candidate, key_of, owner: str, reserved: list[str], dry_run: bool):
        for _ in range(ATTEMPTS):
            value = candidate()
            if dry_run:
                return value
            try:
                await self.storage.create(key_of(value), {"metadata": {"name": str(value)}, "owner": owner})
            except storage_errors.AlreadyExists:
                continue
            reserved.append(key_of(value))
            return value
        raise api.service_unavailable("no free cluster IP or node port could be allocated; try again")

    async def _reserve_explicit_ip(self, ip: str, owner: str, reserved: list[str], dry_run: bool) -> None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return  # validation reports the malformed value
        if address not in self.network:
            raise api.invalid("Service", owner.split("/", 1)[1], [api.invalid_value(
                "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the "
                f"valid range. The range of valid IPs is {self.network}")])
        if dry_run:
            return
        try:
            await self.storage.create(self._ip_key(ip), {"metadata": {"name": ip}, "owner": owner})
        except storage_errors.AlreadyExists:
            raise api.invalid("Service", owner.split("/", 1)[1], [api.invalid_value(
                "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP is already allocated")]) from None
        reserved.append(self._ip_key(ip))
