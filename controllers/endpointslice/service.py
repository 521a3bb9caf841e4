"""Service and pod facts the Endpoints, EndpointSlice and mirroring controllers share.

Which pods a Service selects, which of them belong in its endpoints, which pod IP a Service uses,
what a named ``targetPort`` resolves to in a given pod, and which Services a pod event concerns —
Kubernetes keeps these in ``pkg/controller/util/endpoint`` and ``endpointslice/util`` so that the
legacy Endpoints and the EndpointSlices always agree; so do we. All functions are pure and must not
mutate their (cache-owned) arguments.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from controllers.podutil import is_ready
from machinery.cache import NAMESPACE_INDEX, Indexer
from machinery.errors import StatusError
from machinery.labels import selector_from_set
from machinery.meta import is_being_deleted, key_of, labels_of, name_of, namespace_of, uid_of

Obj = dict[str, Any]

# --- well-known keys (k8s.io/api core/v1 and discovery/v1) -----------------------------------------

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
ANNOTATION_LEADER = "control-plane.alpha.kubernetes.io/leader"
ANNOTATION_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
LABEL_ZONE = "topology.kubernetes.io/zone"
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"

IPV4, IPV6 = "IPv4", "IPv6"


# --- services ----------------------------------------------------------------------------------------


def service_spec(service: Mapping[str, Any]) -> Mapping[str, Any]:
    return service.get("spec") or {}


def selector_of(service: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The Service's pod selector, or None for a selector-less Service.

    An empty map counts as none: Kubernetes stores Services as protobuf, where ``{}`` and a missing
    selector read back the same (nil), so ``selector: {}`` never selects every pod.
    """
    return service_spec(service).get("selector") or None


def selects_pods(service: Mapping[str, Any]) -> bool:
    """Whether the endpoint controllers manage this Service's endpoints (a selector, not ExternalName)."""
    return service_spec(service).get("type") != "ExternalName" and selector_of(service) is not None


def is_headless(service: Mapping[str, Any]) -> bool:
    """No cluster IP allocated (``clusterIP: None`` or empty): helper.IsServiceIPSet is false."""
    return service_spec(service).get("clusterIP") in (None, "", "None")


def publishes_not_ready(service: Mapping[str, Any]) -> bool:
    return bool(service_spec(service).get("publishNotReadyAddresses"))


def pods_for_service(pods: Indexer, service: Mapping[str, Any]) -> list[Obj]:
    """The pods in the Service's namespace its selector matches, sorted by name (stable output)."""
    selector = selector_of(service)
    if selector is None:
        return []
    matcher = selector_from_set(selector)
    found = [p for p in pods.by_index(NAMESPACE_INDEX, namespace_of(service)) if matcher.matches(labels_of(p))]
    return sorted(found, key=name_of)


# --- pods --------------------------------------------------------------------------------------------


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    """status.podIPs in order (status.podIP when a writer filled only that)."""
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or () if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """endpointsliceutil.ShouldPodBeInEndpoints: not terminal, has an IP, terminating only if asked for."""
    if is_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not is_being_deleted(pod)


def ip_family(ip: str) -> str | None:
    """``IPv4`` or ``IPv6`` for a valid address, None otherwise."""
    try:
        return IPV6 if ipaddress.ip_address(ip).version == 6 else IPV4
    except ValueError:
        return None


def service_ip_family(service: Mapping[str, Any], pod: Mapping[str, Any]) -> str:
    """The family whose pod IP the Endpoints use: spec.ipFamilies[0], else the cluster IP's, else the pod's."""
    spec = service_spec(service)
    families = spec.get("ipFamilies") or []
    if families:
        return families[0]
    if not is_headless(service):
        return ip_family(spec.get("clusterIP") or "") or IPV4
    ips = pod_ips(pod)
    return (ip_family(ips[0]) if ips else None) or IPV4


def pod_ip_for_service(service: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    family = service_ip_family(service, pod)
    return next((ip for ip in pod_ips(pod) if ip_family(ip) == family), None)


def should_set_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    """A pod's hostname is published when its subdomain names the Service (same namespace)."""
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == name_of(service) \
        and namespace_of(pod) == namespace_of(service)


def pod_reference(pod: Mapping[str, Any]) -> Obj:
    return {"kind": "Pod", "namespace": namespace_of(pod), "name": name_of(pod), "uid": uid_of(pod)}


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """podutil.FindPort: the port a Service port's targetPort means in this pod, or None.

    A number is taken as is (unset means the Service port itself); a name is looked up among the
    container ports with that name and the Service port's protocol — regular containers first,
    then sidecars (init containers with ``restartPolicy: Always``).
    """
    target = service_port.get("targetPort")
    if target is None or target in ("", 0):
        return service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or ()), *sidecars]:
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


# --- which services a pod event concerns ----------------------------------------------------------------


def services_for_pod(services: Indexer, pod: Mapping[str, Any]) -> set[str]:
    """Keys of the Services (with a selector) in the pod's namespace whose selector matches its labels."""
    labels = labels_of(pod)
    return {key_of(s) for s in services.by_index(NAMESPACE_INDEX, namespace_of(pod))
            if (selector := selector_of(s)) is not None and selector_from_set(selector).matches(labels)}


def services_to_update_on_pod_change(services: Indexer, old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    """GetServicesToUpdateOnPodChange: nothing for a resync; the affected Services otherwise."""
    if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get("resourceVersion"):
        return set()
    pod_changed, labels_changed = _pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    current = services_for_pod(services, new)
    if not labels_changed:
        return current
    previous = services_for_pod(services, old)
    return current | previous if pod_changed else current ^ previous


def _pod_endpoints_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[bool, bool]:
    """(the pod's endpoint changed, its service membership may have changed)."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    labels_changed = labels_of(old) != labels_of(new) or any(
        old_spec.get(f) != new_spec.get(f) for f in ("hostname", "subdomain"))
    pod_changed = (
        (old.get("metadata") or {}).get("deletionTimestamp") != (new.get("metadata") or {}).get("deletionTimestamp")
        or is_ready(old) != is_ready(new)
        or pod_ips(old) != pod_ips(new)
        or is_terminal(old) != is_terminal(new)
    )
    return pod_changed, labels_changed


# --- errors --------------------------------------------------------------------------------------------


def namespace_terminating(err: StatusError) -> bool:
    """The API server refused a create because the namespace is being deleted (retrying cannot help)."""
    causes = (err.details or {}).get("causes") or []
    return any(isinstance(c, Mapping) and c.get("reason") == NAMESPACE_TERMINATING_CAUSE for c in causes)
