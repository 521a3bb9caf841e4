"""``kubectl get`` columns of the core/v1 kinds other than Pods and Events.

Nodes, Namespaces, Services, Endpoints, ConfigMaps, Secrets, ServiceAccounts, ResourceQuotas,
PersistentVolumes and PersistentVolumeClaims, with kube-apiserver's v1.35 columns and cell formats
(``80:30080/TCP``, ``10.0.0.1:80 + 2 more...``, ``RWO,RWX``, node roles and readiness).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from apiserver.registry.printers.base import (
    NONE,
    UNSET,
    Printer,
    age_cell,
    age_col,
    col,
    join_more,
    name_cell,
    name_col,
    wide,
)
from apiserver.registry.printers.selectors import format_labels

# --- core/v1 Node ---------------------------------------------------------------------------

NODE_COLUMNS = [
    name_col(),
    col("Status", "The status of the node"),
    col("Roles", "The roles of the node"),
    age_col(),
    col("Version", "Kubelet Version reported by the node."),
    wide("Internal-IP", "List of addresses reachable to the node."),
    wide("External-IP", "List of addresses reachable to the node."),
    wide("OS-Image", "OS Image reported by the node from /etc/os-release."),
    wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r'."),
    wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API."),
]

_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_roles(labels: dict | None) -> list[str]:
    """Sorted roles from ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role=<role>``."""
    roles: set[str] = set()
    for key, value in (labels or {}).items():
        if key.startswith(_ROLE_PREFIX):
            role = key[len(_ROLE_PREFIX):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def _node_address(status: dict, type_: str) -> str:
    for addr in status.get("addresses") or ():
        if addr.get("type") == type_:
            return addr.get("address", "")
    return NONE


def _node_row(node: dict, now: datetime) -> list:
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    state = "Unknown"
    ready = None
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            ready = cond  # the last one wins, as in the map Kubernetes builds
    if ready is not None:
        state = "Ready" if ready.get("status") == "True" else "NotReady"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = ",".join(node_roles((node.get("metadata") or {}).get("labels"))) or NONE
    return [
        name_cell(node), state, roles, age_cell(node, now), info.get("kubeletVersion", ""),
        _node_address(status, "InternalIP"), _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


# --- core/v1: Namespace, Service, Endpoints, ConfigMap, Secret, ServiceAccount ---------------

NAMESPACE_COLUMNS = [name_col(), col("Status", "The status of the namespace"), age_col()]


def _namespace_row(ns: dict, now: datetime) -> list:
    return [name_cell(ns), (ns.get("status") or {}).get("phase", ""), age_cell(ns, now)]


SERVICE_COLUMNS = [
    name_col(),
    col("Type", "type determines how the Service is exposed."),
    col("Cluster-IP", "clusterIP is the IP address of the service."),
    col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also "
                       "accept traffic for this service."),
    col("Port(s)", "The list of ports that are exposed by this service."),
    age_col(),
    wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
]


def _service_external_ip(svc_type: str, spec: dict, status: dict) -> str:
    external_ips = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else NONE
    if svc_type == "LoadBalancer":
        # The server prints wide, so load-balancer addresses are never clipped.
        lb = set()
        for ing in (status.get("loadBalancer") or {}).get("ingress") or ():
            if ing.get("ip"):
                lb.add(ing["ip"])
            elif ing.get("hostname"):
                lb.add(ing["hostname"])
        lb_ips = sorted(lb)
        if external_ips:
            return ",".join([*lb_ips, *external_ips])
        return ",".join(lb_ips) if lb_ips else "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(ports: Iterable[dict] | None) -> str:
    """``80/TCP,443:30443/TCP``; ``<none>`` when the service has no ports."""
    pieces = []
    for p in ports or ():
        proto = p.get("protocol") or "TCP"
        node_port = p.get("nodePort") or 0
        if node_port > 0:
            pieces.append(f"{p.get('port', 0)}:{node_port}/{proto}")
        else:
            pieces.append(f"{p.get('port', 0)}/{proto}")
    return ",".join(pieces) or NONE


def _service_row(svc: dict, now: datetime) -> list:
    spec = svc.get("spec") or {}
    svc_type = spec.get("type") or "ClusterIP"
    cluster_ips = spec.get("clusterIPs") or ()
    cluster_ip = cluster_ips[0] if cluster_ips else (spec.get("clusterIP") or NONE)
    return [
        name_cell(svc), svc_type, cluster_ip, _service_external_ip(svc_type, spec, svc.get("status") or {}),
        service_ports(spec.get("ports")), age_cell(svc, now), format_labels(spec.get("selector")),
    ]


ENDPOINTS_COLUMNS = [
    name_col(),
    col("Endpoints", "The set of all endpoints is the union of all subsets."),
    age_col(),
]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(subsets: Iterable[dict] | None, limit: int = 3) -> str:
    """``10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...``; ``<none>`` without subsets."""
    subsets = subsets or ()
    if not subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addresses = ss.get("addresses") or ()
        ports = ss.get("ports") or ()
        if not ports:  # headless services may have no ports
            count += len(addresses)
            for addr in addresses:
                if len(shown) == limit:
                    break
                shown.append(addr.get("ip", ""))
            continue
        for port in ports:
            count += len(addresses)
            for addr in addresses:
                if len(shown) == limit:
                    break
                shown.append(_host_port(addr.get("ip", ""), port.get("port", 0)))
    return join_more(shown, count, limit, "")


def _endpoints_row(ep: dict, now: datetime) -> list:
    return [name_cell(ep), format_endpoints(ep.get("subsets")), age_cell(ep, now)]


CONFIGMAP_COLUMNS = [name_col(), col("Data", "Data contains the configuration data."), age_col()]


def _configmap_row(cm: dict, now: datetime) -> list:
    return [name_cell(cm), len(cm.get("data") or ()) + len(cm.get("binaryData") or ()), age_cell(cm, now)]


SECRET_COLUMNS = [
    name_col(),
    col("Type", "Used to facilitate programmatic handling of secret data."),
    col("Data", "Data contains the secret data."),
    age_col(),
]


def _secret_row(secret: dict, now: datetime) -> list:
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    count = len(data) + sum(1 for k in string_data if k not in data)  # stringData merges into data
    return [name_cell(secret), secret.get("type") or "Opaque", count, age_cell(secret, now)]


# v1.35 dropped the SECRETS count: no core component fills serviceAccount.secrets any more.
SERVICEACCOUNT_COLUMNS = [name_col(), age_col()]


def _serviceaccount_row(sa: dict, now: datetime) -> list:
    return [name_cell(sa), age_cell(sa, now)]


# --- core/v1: ResourceQuota, PersistentVolume, PersistentVolumeClaim --------------------------

# v1.33 moved Age after Request/Limit.
RESOURCEQUOTA_COLUMNS = [
    name_col(),
    col("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
    col("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent "
                 "of contention on the node."),
    age_col(),
]


def _resourcequota_row(rq: dict, now: datetime) -> list:
    status = rq.get("status") or {}
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    requests, limits = [], []
    for resource in sorted(hard):
        text = f"{resource}: {used.get(resource, '0')}/{hard[resource]}"
        (limits if resource.startswith("limits.") else requests).append(text)
    return [name_cell(rq), ", ".join(requests), ", ".join(limits), age_cell(rq, now)]


_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: Iterable[str] | None) -> str:
    """``RWO,RWX`` in Kubernetes' fixed order, duplicates dropped."""
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


_BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def _storage_class(obj: dict) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if _BETA_CLASS_ANNOTATION in annotations:
        return annotations[_BETA_CLASS_ANNOTATION]
    return (obj.get("spec") or {}).get("storageClassName") or ""


PV_COLUMNS = [
    name_col(),
    col("Capacity", "capacity is the description of the persistent volume's resources and capacity."),
    col("Access Modes", "accessModes contains all ways the volume can be mounted."),
    col("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume "
                          "when released from its claim."),
    col("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    col("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and "
                 "PersistentVolumeClaim."),
    col("StorageClass", "StorageClass of the pv"),
    col("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
    col("Reason", "reason is a brief CamelCase string that describes any failure."),
    age_col(),
    wide("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted "
                       "filesystem or to remain in raw block state."),
]


def _pv_row(pv: dict, now: datetime) -> list:
    spec = pv.get("spec") or {}
    status = pv.get("status") or {}
    claim_ref = spec.get("claimRef")
    claim = f"{claim_ref.get('namespace', '')}/{claim_ref.get('name', '')}" if claim_ref else ""
    phase = "Terminating" if (pv.get("metadata") or {}).get("deletionTimestamp") else status.get("phase", "")
    capacity = str((spec.get("capacity") or {}).get("storage", "0"))
    return [
        name_cell(pv), capacity, access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""), phase, claim, _storage_class(pv),
        spec.get("volumeAttributesClassName") or UNSET, status.get("reason", ""), age_cell(pv, now),
        spec.get("volumeMode") or UNSET,
    ]


PVC_COLUMNS = [
    name_col(),
    col("Status", "phase represents the current phase of PersistentVolumeClaim."),
    col("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    col("Capacity", "capacity represents the actual resources of the underlying volume."),
    col("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has."),
    col("StorageClass", "StorageClass of the pvc"),
    col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
    age_col(),
    wide("VolumeMode", "volumeMode defines what type of volume is required by the claim."),
]


def _pvc_row(pvc: dict, now: datetime) -> list:
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    phase = "Terminating" if (pvc.get("metadata") or {}).get("deletionTimestamp") else status.get("phase", "")
    volume = spec.get("volumeName") or ""
    capacity = modes = ""
    if volume:  # capacity and modes are those of the bound volume
        modes = access_modes(status.get("accessModes"))
        capacity = str((status.get("capacity") or {}).get("storage", "0"))
    return [
        name_cell(pvc), phase, volume, capacity, modes, _storage_class(pvc),
        spec.get("volumeAttributesClassName") or UNSET, age_cell(pvc, now), spec.get("volumeMode") or UNSET,
    ]


PRINTERS = {
    ("", "Node"): Printer(NODE_COLUMNS, _node_row),
    ("", "Namespace"): Printer(NAMESPACE_COLUMNS, _namespace_row),
    ("", "Service"): Printer(SERVICE_COLUMNS, _service_row),
    ("", "Endpoints"): Printer(ENDPOINTS_COLUMNS, _endpoints_row),
    ("", "ConfigMap"): Printer(CONFIGMAP_COLUMNS, _configmap_row),
    ("", "Secret"): Printer(SECRET_COLUMNS, _secret_row),
    ("", "ServiceAccount"): Printer(SERVICEACCOUNT_COLUMNS, _serviceaccount_row),
    ("", "ResourceQuota"): Printer(RESOURCEQUOTA_COLUMNS, _resourcequota_row),
    ("", "PersistentVolume"): Printer(PV_COLUMNS, _pv_row),
    ("", "PersistentVolumeClaim"): Printer(PVC_COLUMNS, _pvc_row),
}
