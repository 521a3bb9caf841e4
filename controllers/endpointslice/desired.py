"""The EndpointSlice shapes the slice controller wants: one endpoint per pod, its ports, the slice around them.

Pure functions from a Service and its pods (and the pods' Nodes) to discovery.k8s.io/v1 objects,
following Kubernetes' endpointslice ``utils.go``: an endpoint carries the pod's addresses of the
slice's address type, its conditions (``serving`` = pod Ready, ``terminating`` = being deleted,
``ready`` = serving and not terminating, or always with publishNotReadyAddresses), nodeName, the
node's zone, the hostname for a pod in the Service's subdomain, and a reference to the pod. The
ports are the Service's ports with targetPort resolved in that pod, so pods resolving a named port
differently land in different slices. Topology hints (topology-aware routing) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controllers.endpointslice.service import (
    IPV4,
    IPV6,
    LABEL_HEADLESS,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    LABEL_ZONE,
    find_port,
    ip_family,
    is_headless,
    pod_ips,
    pod_reference,
    publishes_not_ready,
    service_spec,
    should_set_hostname,
)
from controllers.podutil import is_ready
from machinery.client import ENDPOINT_SLICES
from machinery.meta import deep_copy, is_being_deleted, labels_of, name_of, namespace_of, new_controller_ref, uid_of

Obj = dict[str, Any]
PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager --max-endpoints-per-slice default
RESERVED_LABELS = frozenset({LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS})


def address_types_for_service(service: Mapping[str, Any]) -> list[str]:
    """getAddressTypesForService: the Service's IP families; without them the cluster IP's family,
    and for a headless Service both (a Service written before dual-stack defaulting)."""
    spec = service_spec(service)
    families = [f for f in (spec.get("ipFamilies") or ()) if f in (IPV4, IPV6)]
    if families:
        return list(dict.fromkeys(families))
    if not is_headless(service):
        return [ip_family(spec.get("clusterIP") or "") or IPV4]
    return [IPV4, IPV6]


def endpoint_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> list[Obj]:
    """The Service's ports with targetPort resolved in ``pod``; ports the pod lacks are left out."""
    ports = []
    for service_port in service_spec(service).get("ports") or ():
        number = find_port(pod, service_port)
        if number is None:
            continue
        port: Obj = {"name": service_port.get("name") or "", "port": number,
                     "protocol": service_port.get("protocol") or "TCP"}
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def port_key(ports: Iterable[Mapping[str, Any]] | None) -> PortKey:
    """An order-independent identity for a slice's port list (NewPortMapKey)."""
    return tuple(sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports or ()))


def pod_to_endpoint(pod: Mapping[str, Any], node: Mapping[str, Any] | None, service: Mapping[str, Any],
                    address_type: str) -> Obj:
    serving = is_ready(pod)
    terminating = is_being_deleted(pod)
    endpoint: Obj = {
        "addresses": [ip for ip in pod_ips(pod) if ip_family(ip) == address_type],
        "conditions": {"ready": publishes_not_ready(service) or (serving and not terminating),
                       "serving": serving, "terminating": terminating},
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = (pod.get("spec") or {})["hostname"]
    endpoint["targetRef"] = pod_reference(pod)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = labels_of(node).get(LABEL_ZONE) if node is not None else None
    if zone:
        endpoint["zone"] = zone
    return endpoint


def endpoint_key(endpoint: Mapping[str, Any]) -> EndpointKey:
    """Which endpoints are "the same" across syncs (hashEndpoint): addresses, hostname and the target."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or ())), endpoint.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def slice_labels(service: Mapping[str, Any], controller_name: str) -> dict[str, str]:
    """The Service's labels (reserved keys excepted), the headless marker, service-name and managed-by."""
    labels = {k: v for k, v in labels_of(service).items() if k not in RESERVED_LABELS}
    if is_headless(service):
        labels[LABEL_HEADLESS] = ""
    labels[LABEL_SERVICE_NAME] = name_of(service)
    labels[LABEL_MANAGED_BY] = controller_name
    return labels


def new_slice(service: Mapping[str, Any], ports: list[Obj], address_type: str,
              controller_name: str = CONTROLLER_NAME) -> Obj:
    """An unsaved slice for ``service`` (generateName ``<service>-``, controlled by the Service)."""
    metadata: Obj = {
        "generateName": f"{name_of(service)}-",
        "namespace": namespace_of(service),
        "labels": slice_labels(service, controller_name),
        "ownerReferences": [new_controller_ref(service, api_version="v1", kind="Service")],
    }
    endpoint_slice: Obj = {"apiVersion": ENDPOINT_SLICES.api_version, "kind": ENDPOINT_SLICES.kind,
                           "metadata": metadata, "addressType": address_type, "endpoints": []}
    if ports:
        endpoint_slice["ports"] = deep_copy(ports)
    return endpoint_slice


def owned_by(endpoint_slice: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    """Whether the slice names this very Service (same UID) as an owner."""
    return any(ref.get("uid") == uid_of(service) and ref.get("kind") == "Service" and ref.get("apiVersion") == "v1"
               for ref in (endpoint_slice.get("metadata") or {}).get("ownerReferences") or ())


def is_placeholder_for(endpoint_slice: Mapping[str, Any], service: Mapping[str, Any], address_type: str,
                       controller_name: str = CONTROLLER_NAME) -> bool:
    """Whether an existing slice is exactly the empty placeholder we would create for the Service."""
    return (not endpoint_slice.get("endpoints") and not endpoint_slice.get("ports")
            and endpoint_slice.get("addressType") == address_type
            and dict(labels_of(endpoint_slice)) == slice_labels(service, controller_name)
            and owned_by(endpoint_slice, service))
