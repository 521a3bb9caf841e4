"""SchedulingGates: a pod with ``spec.schedulingGates`` is not scheduled until every gate is removed.

PreEnqueue keeps such pods out of the active queue (``kubectl get pod`` shows ``SchedulingGated``);
removing the last gate is a pod update, which brings the pod back.
"""

from __future__ import annotations

from typing import Any

from scheduler.framework import ClusterEvent, Handle, PodInfo, Status, unresolvable


class SchedulingGates:
    NAME = "SchedulingGates"

    def __init__(self, args: dict[str, Any], handle: Handle) -> None:
        self.handle = handle

    def pre_enqueue(self, pod_info: PodInfo) -> Status | None:
        gates = pod_info.spec.get("schedulingGates") or []
        if not gates:
            return None
        names = ", ".join(g.get("name", "") for g in gates)
        return unresolvable(f"waiting for scheduling gates: [{names}]")

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Pod", "UpdatePodSchedulingGatesEliminated")]
