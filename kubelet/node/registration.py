"""The Node object a kubelet registers, and how it adopts a Node that already exists.

:func:`initial_node` is the kubelet's ``initialNode``: default labels (hostname, os, arch and their
``beta.`` twins), the ``--node-labels``, the controller-managed attach/detach annotation, the pod CIDR,
the ``--register-with-taints`` and the full first status. :func:`adoption_patch` is
``tryRegisterWithAPIServer``'s reconciliation when the Node exists (a kubelet restart, or a node
re-joining): the default labels are set back to this machine's values, the annotation restored, and a
pod CIDR filled in when the Node has none. As in Kubernetes, ``--node-labels`` and taints are applied only
when the Node is created: afterwards they belong to the cluster's administrators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubelet.node.config import NodeConfig

HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
BETA_OS_LABEL = "beta.kubernetes.io/os"
BETA_ARCH_LABEL = "beta.kubernetes.io/arch"
CONTROLLER_MANAGED_ATTACH_DETACH = "volumes.kubernetes.io/controller-managed-attach-detach"


def default_labels(config: NodeConfig, architecture: str) -> dict[str, str]:
    """The labels the kubelet owns and keeps reconciled on its Node (a --node-labels value for one of these
    keys wins, as in the kubelet)."""
    defaults = {HOSTNAME_LABEL: config.node_name, OS_LABEL: "linux", ARCH_LABEL: architecture,
                BETA_OS_LABEL: "linux", BETA_ARCH_LABEL: architecture}
    return {key: config.labels.get(key, value) for key, value in defaults.items()}


def initial_node(config: NodeConfig, architecture: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """The Node to create; ``status`` is the first full status (must not be mutated later by the caller)."""
    spec: dict[str, Any] = {}
    if config.pod_cidr:
        spec["podCIDR"] = config.pod_cidr
        spec["podCIDRs"] = [config.pod_cidr]
    if config.taints:
        spec["taints"] = [dict(t) for t in config.taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": {**config.labels, **default_labels(config, architecture)},
            "annotations": {CONTROLLER_MANAGED_ATTACH_DETACH: "true"},
        },
        "spec": spec,
        "status": dict(status),
    }


def adoption_patch(existing: Mapping[str, Any], config: NodeConfig, architecture: str) -> dict[str, Any]:
    """A merge patch bringing an existing Node in line with this kubelet (empty: nothing to change).

    The patch carries the Node's resourceVersion, so it fails with a conflict rather than overwrite a
    change made meanwhile (the caller re-reads and tries again).
    """
    meta = existing.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    patch: dict[str, Any] = {}
    wanted = default_labels(config, architecture)
    label_changes = {k: v for k, v in wanted.items() if labels.get(k) != v}
    if label_changes:
        patch.setdefault("metadata", {})["labels"] = label_changes
    if annotations.get(CONTROLLER_MANAGED_ATTACH_DETACH) != "true":
        patch.setdefault("metadata", {})["annotations"] = {CONTROLLER_MANAGED_ATTACH_DETACH: "true"}
    spec = existing.get("spec") or {}
    if config.pod_cidr and not spec.get("podCIDR") and not spec.get("podCIDRs"):
        patch["spec"] = {"podCIDR": config.pod_cidr, "podCIDRs": [config.pod_cidr]}
    if patch:
        patch.setdefault("metadata", {})["resourceVersion"] = meta.get("resourceVersion")
    return patch


def owner_reference(node: Mapping[str, Any]) -> dict[str, str]:
    """The reference that makes an object (the node's Lease) garbage collected with the Node."""
    meta = node.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Node", "name": meta.get("name") or "", "uid": meta.get("uid") or ""}
