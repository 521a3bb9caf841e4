"""Canonical Endpoints subsets: every address once per distinct port set, in a stable order.

Kubernetes' ``RepackSubsets`` turns any list of subsets into the canonical N-to-M form: for each
port, the set of addresses offering it (with their readiness for that port, ready winning over not
ready); ports whose address sets are identical share one subset. The Endpoints controller feeds it
one single-address, single-port subset per (pod, port) and so gets "one subset per unique port
set"; the mirroring controller repacks user-written subsets before mirroring them. Ordering is
deterministic (addresses by IP then pod UID, ports by name/number/protocol) so that a rewrite is
needed only when something really changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from machinery.meta import deep_copy

Obj = dict[str, Any]
AddressKey = tuple[str, str]
PortId = tuple[str, int, str, str]
_NO_PORT: PortId = ("", -1, "", "")  # stands for "no ports": headless Services without ports keep their addresses


def address_key(address: Mapping[str, Any]) -> AddressKey:
    """Two addresses are the same endpoint when IP and target UID agree (addressKey)."""
    return address.get("ip") or "", (address.get("targetRef") or {}).get("uid") or ""


def port_id(port: Mapping[str, Any] | None) -> PortId:
    if port is None:
        return _NO_PORT
    return (port.get("name") or "", int(port.get("port") or 0), port.get("protocol") or "TCP",
            port.get("appProtocol") or "")


def repack_subsets(subsets: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """RepackSubsets: the canonical form of ``subsets`` (which are not modified)."""
    addresses: dict[AddressKey, Mapping[str, Any]] = {}
    ports: dict[PortId, Mapping[str, Any] | None] = {}
    readiness: dict[PortId, dict[AddressKey, bool]] = {}
    for subset in subsets:
        for port in subset.get("ports") or [None]:
            pid = port_id(port)
            ports.setdefault(pid, port)
            seen = readiness.setdefault(pid, {})
            for ready, field in ((True, "addresses"), (False, "notReadyAddresses")):
                for address in subset.get(field) or ():
                    key = address_key(address)
                    addresses.setdefault(key, address)
                    seen[key] = seen.get(key, False) or ready
    groups: dict[frozenset[tuple[AddressKey, bool]], list[PortId]] = {}
    for pid, seen in readiness.items():
        groups.setdefault(frozenset(seen.items()), []).append(pid)
    packed = []
    for members, pids in groups.items():
        subset: Obj = {}
        ready = [addresses[k] for k, r in members if r]
        not_ready = [addresses[k] for k, r in members if not r]
        if ready:
            subset["addresses"] = deep_copy(ready)
        if not_ready:
            subset["notReadyAddresses"] = deep_copy(not_ready)
        real = [deep_copy(ports[p]) for p in pids if p != _NO_PORT]
        if real:
            subset["ports"] = real
        if ready or not_ready:
            packed.append(subset)
    return sort_subsets(packed)


def sort_subsets(subsets: Iterable[Obj]) -> list[Obj]:
    """Sort addresses and ports inside each subset, then the subsets (by first address, then ports)."""
    result = []
    for subset in subsets:
        for field in ("addresses", "notReadyAddresses"):
            if subset.get(field):
                subset[field] = sorted(subset[field], key=address_key)
        if subset.get("ports"):
            subset["ports"] = sorted(subset["ports"], key=port_id)
        result.append(subset)
    return sorted(result, key=_subset_order)


def _subset_order(subset: Mapping[str, Any]) -> tuple:
    first = (subset.get("addresses") or subset.get("notReadyAddresses") or [{}])[0]
    return address_key(first), [port_id(p) for p in subset.get("ports") or ()]


def canonical_subsets(subsets: Iterable[Mapping[str, Any]] | None) -> list[Obj]:
    """Subsets as stored, sorted and without target resourceVersions, for change detection
    (endpointSubsetsEqualIgnoreResourceVersion)."""
    copied = deep_copy(list(subsets or ()))
    for subset in copied:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or ():
                (address.get("targetRef") or {}).pop("resourceVersion", None)
    return sort_subsets(copied)
