"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node.

Filter answers UNSCHEDULABLE_AND_UNRESOLVABLE "node(s) didn't match the requested node name" on every
other node (preemption cannot rename a node). PreFilter additionally narrows the candidates to the named
node, so the runtime does not even visit the others — a kubemini shortcut; Kubernetes' plugin only filters.
"""

from __future__ import annotations

from typing import Any

from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, PodInfo, PreFilterResult, Status
from scheduler.framework.status import skip, unresolvable

ERR_REASON = "node(s) didn't match the requested node name"


def _requested_node(pod_info: PodInfo) -> str:
    return (pod_info.pod.get("spec") or {}).get("nodeName") or ""


class NodeName:
    NAME = "NodeName"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        del args, handle  # no configuration

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        name = _requested_node(pod_info)
        if not name:
            return None, skip()  # nothing to check: Filter is not called for this pod
        return PreFilterResult({name}), None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        name = _requested_node(pod_info)
        if name and name != node_info.name:
            return unresolvable(ERR_REASON)
        return None

    def events_to_register(self) -> list[ClusterEvent]:
        # a node's name never changes: only a new node can be the one the pod asks for
        return [ClusterEvent("Node", "Add")]
