"""The labels and annotations the kubelet puts on CRI sandboxes and containers, and reads back.

They are how the kubelet finds a pod's sandbox and containers again after a restart (it keeps no state of
its own), the same keys the upstream kubelet writes, so ``crictl ps`` output reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_TYPE = "io.kubernetes.container.type"  # "container"

# Container annotations.
RESTART_COUNT = "io.kubernetes.container.restartCount"
CONTAINER_HASH = "io.kubernetes.container.hash"  # changes when the spec fields that need a restart change
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
CONTAINER_KIND = "kubemini.io/container-kind"  # "init", "sidecar" or "regular"


def pod_labels(pod: Mapping) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    return {POD_NAME: meta.get("name", ""), POD_NAMESPACE: meta.get("namespace", ""), POD_UID: meta.get("uid", "")}


def container_labels(pod: Mapping, container_name: str) -> dict[str, str]:
    return {**pod_labels(pod), CONTAINER_NAME: container_name, CONTAINER_TYPE: "container"}
