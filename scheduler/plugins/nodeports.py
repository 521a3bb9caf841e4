"""NodePorts: two pods cannot bind the same host port (same protocol, overlapping host IP) on one node.

PreFilter collects the pod's host ports (``PodInfo.host_ports``) and skips the plugin for the common pod
that has none; Filter rejects a node whose pods already use a conflicting port with UNSCHEDULABLE
"node(s) didn't have free ports for the requested pod ports" (evicting the holder frees it). A host IP
of 0.0.0.0 (or unset) conflicts with every IP for that protocol and port.
"""

from __future__ import annotations

from typing import Any

from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, PodInfo, PreFilterResult, Status, skip
from scheduler.framework.status import unschedulable
from scheduler.framework.types import HostPort

ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
PRE_FILTER_KEY = "PreFilterNodePorts"


def fits_ports(wanted: tuple[HostPort, ...], node_info: NodeInfo) -> bool:
    used = node_info.used_ports
    if not used:
        return True
    return not any(want.conflicts(existing) for want in wanted for existing in used)


class NodePorts:
    NAME = "NodePorts"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        del args, handle  # no configuration

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        ports = pod_info.host_ports
        if not ports:
            return None, skip()
        state.write(PRE_FILTER_KEY, ports)
        return None, None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        if not node_info.used_ports:
            return None
        wanted = state.get(PRE_FILTER_KEY)
        if wanted is None:
            wanted = pod_info.host_ports
        return None if fits_ports(wanted, node_info) else unschedulable(ERR_REASON)

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Pod", "Delete"), ClusterEvent("Node", "Add")]
