"""NodeUnschedulable: cordoned nodes (``spec.unschedulable: true``, what ``kubectl cordon`` sets) take no new pods.

A pod that tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint (DaemonSet pods do) may
still land there. The rejection is UNSCHEDULABLE_AND_UNRESOLVABLE "node(s) were unschedulable":
evicting pods does not uncordon a node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, PodInfo, Status
from scheduler.framework.status import unresolvable

ERR_REASON = "node(s) were unschedulable"
TAINT_KEY = "node.kubernetes.io/unschedulable"
TAINT_EFFECT = "NoSchedule"


def tolerates_unschedulable(toleration: Mapping[str, Any]) -> bool:
    """Whether one toleration matches the unschedulable taint (v1helper ToleratesTaint; the taint has no value)."""
    effect = toleration.get("effect") or ""
    if effect and effect != TAINT_EFFECT:
        return False
    key = toleration.get("key") or ""
    if key and key != TAINT_KEY:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == ""


class NodeUnschedulable:
    NAME = "NodeUnschedulable"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        del args, handle  # no configuration

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        node = node_info.node
        if node is None or not (node.get("spec") or {}).get("unschedulable"):
            return None
        tolerations = (pod_info.pod.get("spec") or {}).get("tolerations") or ()
        if any(tolerates_unschedulable(t) for t in tolerations):
            return None
        return unresolvable(ERR_REASON)

    def events_to_register(self) -> list[ClusterEvent]:
        # uncordoning is classified as a taint update (spec.unschedulable mirrors the taint)
        return [ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeTaint")]
