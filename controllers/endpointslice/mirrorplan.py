"""What mirroring a user-written Endpoints object into EndpointSlices means (pure functions).

Kubernetes' endpointslicemirroring reconciler: the Endpoints' subsets are repacked, then each
address becomes an endpoint (``ready`` from addresses vs notReadyAddresses; hostname, nodeName and
targetRef copied) filed under its address type (from the IP; invalid IPs are skipped and counted)
and its subset's ports. Each (address type, port set) gets one slice of at most
``MAX_ENDPOINTS_PER_SUBSET`` endpoints — addresses beyond that are skipped and counted too. A
mirrored slice copies the Endpoints' labels and annotations (except the trigger time and kubectl's
last-applied configuration), is labelled ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io``, and is
controlled by the Endpoints object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.endpointslice.desired import EndpointKey, PortKey, endpoint_key, port_key
from controllers.endpointslice.reconciler import SliceChanges
from controllers.endpointslice.service import (
    ANNOTATION_LAST_APPLIED,
    ANNOTATION_TRIGGER_TIME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    ip_family,
)
from controllers.endpointslice.subsets import repack_subsets
from machinery.client import ENDPOINT_SLICES
from machinery.meta import annotations_of, labels_of, name_of, namespace_of, new_controller_ref

Obj = dict[str, Any]
MirrorKey = tuple[str, PortKey]  # (address type, port set)

MIRRORING_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
MAX_ENDPOINTS_PER_SUBSET = 1000  # --mirroring-max-endpoints-per-subset default


@dataclass
class MirrorDesired:
    """Endpoints per (address type, port set), the ports of each, and what was left out."""

    endpoints: dict[MirrorKey, dict[EndpointKey, Obj]] = field(default_factory=dict)
    ports: dict[MirrorKey, list[Obj]] = field(default_factory=dict)
    invalid: int = 0  # addresses whose IP is not an IP
    skipped: int = 0  # addresses left out: invalid or beyond MAX_ENDPOINTS_PER_SUBSET


def desired_from_endpoints(endpoints: Mapping[str, Any]) -> MirrorDesired:
    desired = MirrorDesired()
    for subset in repack_subsets(endpoints.get("subsets") or ()):
        ports = [slice_port(p) for p in subset.get("ports") or ()]
        total = len(subset.get("addresses") or ()) + len(subset.get("notReadyAddresses") or ())
        added = 0
        for ready, kind in ((True, "addresses"), (False, "notReadyAddresses")):
            for address in subset.get(kind) or ():
                if added >= MAX_ENDPOINTS_PER_SUBSET:
                    break
                family = ip_family(address.get("ip") or "")
                if family is None:
                    desired.invalid += 1
                    continue
                key = (family, port_key(ports))
                desired.ports[key] = ports
                endpoint = address_to_endpoint(address, ready)
                desired.endpoints.setdefault(key, {}).setdefault(endpoint_key(endpoint), endpoint)
                added += 1
        desired.skipped += total - added
    return desired


def slice_port(port: Mapping[str, Any]) -> Obj:
    converted: Obj = {"name": port.get("name") or "", "port": port.get("port"),
                      "protocol": port.get("protocol") or "TCP"}
    if port.get("appProtocol"):
        converted["appProtocol"] = port["appProtocol"]
    return converted


def address_to_endpoint(address: Mapping[str, Any], ready: bool) -> Obj:
    endpoint: Obj = {"addresses": [address["ip"]], "conditions": {"ready": ready}}
    if address.get("hostname"):
        endpoint["hostname"] = address["hostname"]
    if address.get("targetRef"):
        endpoint["targetRef"] = dict(address["targetRef"])
    if address.get("nodeName"):
        endpoint["nodeName"] = address["nodeName"]
    return endpoint


def mirrored_labels(endpoints: Mapping[str, Any]) -> dict[str, str]:
    return {**labels_of(endpoints), LABEL_SERVICE_NAME: name_of(endpoints), LABEL_MANAGED_BY: MIRRORING_CONTROLLER_NAME}


def mirrored_annotations(endpoints: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in annotations_of(endpoints).items() if k not in (ANNOTATION_TRIGGER_TIME,
                                                                          ANNOTATION_LAST_APPLIED)}


def mirrored_slice(endpoints: Mapping[str, Any], ports: list[Obj], address_type: str, endpoint_list: list[Obj],
                   existing: Mapping[str, Any] | None = None) -> Obj:
    """The slice mirroring one group: named after ``existing`` (an update) or generateName ``<name>-``."""
    metadata: Obj = {"namespace": namespace_of(endpoints), "labels": mirrored_labels(endpoints),
                     "ownerReferences": [new_controller_ref(endpoints, api_version="v1", kind="Endpoints")]}
    annotations = mirrored_annotations(endpoints)
    if annotations:
        metadata["annotations"] = annotations
    if existing is not None:
        metadata["name"] = name_of(existing)
        metadata["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
    else:
        metadata["generateName"] = f"{name_of(endpoints)}-"
    endpoint_slice: Obj = {"apiVersion": ENDPOINT_SLICES.api_version, "kind": ENDPOINT_SLICES.kind,
                           "metadata": metadata, "addressType": address_type, "endpoints": endpoint_list}
    if ports:
        endpoint_slice["ports"] = ports
    return endpoint_slice


def plan_mirror_group(endpoints: Mapping[str, Any], existing: list[Obj], wanted: dict[EndpointKey, Obj],
                      ports: list[Obj], address_type: str) -> SliceChanges:
    """One slice per group: keep the first existing one (rewritten only when it differs), delete the rest."""
    changes = SliceChanges()
    existing = sorted(existing, key=name_of)
    if not wanted:
        changes.delete += existing
        return changes
    first = existing[0] if existing else None
    changes.delete += existing[1:]
    if first is not None and _mirrors(first, endpoints, wanted):
        return changes
    chosen = list(wanted.values())[:MAX_ENDPOINTS_PER_SUBSET]
    target = mirrored_slice(endpoints, ports, address_type, chosen, first)
    (changes.update if first is not None else changes.create).append(target)
    return changes


def _mirrors(endpoint_slice: Mapping[str, Any], endpoints: Mapping[str, Any], wanted: dict[EndpointKey, Obj]) -> bool:
    """The slice already holds exactly the wanted endpoints, labels and annotations."""
    current = {endpoint_key(e): e for e in endpoint_slice.get("endpoints") or ()}
    return (current == wanted and len(endpoint_slice.get("endpoints") or ()) == len(wanted)
            and dict(labels_of(endpoint_slice)) == mirrored_labels(endpoints)
            and dict(annotations_of(endpoint_slice)) == mirrored_annotations(endpoints))
