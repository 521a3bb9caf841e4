"""The API documents a hollow node writes about itself: its Node, its status heartbeats and its Lease.

Pure functions of the configuration, the node's index and the time, so they are unit-tested without
a server. They describe what a healthy kubelet on a healthy machine reports: the Ready condition True
(``KubeletReady``), the three pressure conditions False, capacity = allocatable from the flags,
nodeInfo, an InternalIP and Hostname address, the kubelet's daemon endpoint and a pod CIDR. The condition
texts, ``kubeletVersion``, the addresses and the Lease bodies come from the real node agent's pure functions
(:mod:`kubelet.node.status`, :mod:`kubelet.node.lease`), so a hollow node cannot drift from a real one.

Simplified relative to Kubernetes: no images list, no volumes, allocatable is not reduced by system
reservations, and the node never reports pressure or NotReady.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from kubelet.hollow.config import HollowConfig, node_ip, pod_cidr
from kubelet.node.lease import LEASE_NAMESPACE, new_lease
from kubelet.node.lease import renewed_lease as renew_node_lease
from kubelet.node.status import KUBELET_VERSION, addresses, healthy_conditions
from machinery.meta import format_rfc3339

Obj = dict[str, Any]

NODE_LEASE_NAMESPACE = LEASE_NAMESPACE
RUNTIME_VERSION = "hollow://1.35.0"
KUBELET_PORT = 10250

HEALTHY_CONDITIONS = tuple(healthy_conditions())  # the real node agent's texts, in the kubelet's order


def node_conditions(heartbeat: datetime, transition: datetime) -> list[Obj]:
    """The four conditions of a healthy node, heartbeating at ``heartbeat``, unchanged since ``transition``."""
    beat, since = format_rfc3339(heartbeat), format_rfc3339(transition)
    return [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
             "lastHeartbeatTime": beat, "lastTransitionTime": since}
            for c in HEALTHY_CONDITIONS]


def _stable_id(name: str, salt: str) -> str:
    """A per-node id that survives restarts of the hollow process (machineID / systemUUID)."""
    return hashlib.sha256(f"{salt}/{name}".encode()).hexdigest()[:32]


def node_status(config: HollowConfig, index: int, now: datetime) -> Obj:
    """The full status a node registers with."""
    name = config.node_name(index)
    resources = {"cpu": config.cpu, "memory": config.memory, "pods": str(config.pods),
                 "ephemeral-storage": config.ephemeral_storage}
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": node_conditions(now, now),
        "addresses": addresses(name, node_ip(index)),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": _stable_id(name, "machine"), "systemUUID": str(uuid.UUID(_stable_id(name, "system"))),
            "bootID": str(uuid.uuid4()), "kernelVersion": "6.1.0-hollow", "osImage": "kubemini hollow node",
            "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
    }


def node_object(config: HollowConfig, index: int, now: datetime) -> Obj:
    """The Node a hollow kubelet registers (status included: nodes keep the status they are created with)."""
    name = config.node_name(index)
    spec: Obj = {"podCIDR": pod_cidr(index), "podCIDRs": [pod_cidr(index)]}
    if config.taints:
        spec["taints"] = [dict(t) for t in config.taints]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": config.node_labels(index),
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": node_status(config, index, now),
    }


def adoption_patch(config: HollowConfig, index: int, now: datetime) -> Obj:
    """A strategic merge patch of ``nodes/status`` that makes an existing node ours and healthy again
    (a hollow process restarted, or a node left over from an earlier run)."""
    return {"status": node_status(config, index, now)}


def heartbeat_patch(now: datetime, transition: datetime) -> Obj:
    """The periodic ``nodes/status`` strategic merge patch: conditions merge by type, only times change."""
    return {"status": {"conditions": node_conditions(now, transition)}}


def lease_object(config: HollowConfig, name: str, node_uid: str, now: datetime) -> Obj:
    """The node's Lease in kube-node-lease, owned by its Node (so deleting the node deletes it)."""
    return new_lease(name, config.lease_duration, now, owner={"metadata": {"name": name, "uid": node_uid}})


def renewed_lease(lease: Obj, config: HollowConfig, now: datetime) -> Obj:
    """``lease`` (not mutated) with renewTime ``now``; its resourceVersion makes the PUT a compare-and-swap."""
    return renew_node_lease(lease, lease["metadata"]["name"], config.lease_duration, now)
