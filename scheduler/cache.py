"""The scheduler's view of the cluster: nodes with the pods on them, including pods it has only *assumed*.

When the scheduler picks a node it does not wait for the binding to round-trip through the API
server and back through the informer: it *assumes* the pod on the node at once, so the next pod is
scheduled against the right totals. The binding then runs in the background; when the informer
delivers the bound pod the assumption is *confirmed*; when binding fails the pod is *forgotten*
(its resources are given back) and retried. Pods bound by someone else (or by a previous scheduler
instance) arrive through the informer and are simply added.

All methods are synchronous and run on the event loop, between scheduling cycles' awaits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from machinery.meta import name_of, uid_of
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass
class _PodState:
    pod_info: PodInfo
    node_name: str
    assumed: bool
    binding_finished: bool = False


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._node_list: list[NodeInfo] = []
        self._pods: dict[str, _PodState] = {}  # by uid

    # --- nodes --------------------------------------------------------------------------------------

    def add_node(self, node: Obj) -> None:
        name = name_of(node)
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(node)
            self._node_list.append(info)
            # pods that arrived before their node (informers race) were parked; move them in
            for state in self._pods.values():
                if state.node_name == name and state.pod_info not in info.pods:
                    info.add_pod(state.pod_info)
        else:
            info.set_node(node)
        info.generation += 1

    update_node = add_node

    def remove_node(self, node: Obj) -> None:
        info = self._nodes.pop(name_of(node), None)
        if info is not None:
            self._node_list.remove(info)

    def node_count(self) -> int:
        return len(self._node_list)

    # --- pods ---------------------------------------------------------------------------------------

    def assume_pod(self, pod_info: PodInfo, node_name: str) -> None:
        """Account ``pod_info`` on ``node_name`` before the binding is confirmed."""
        if pod_info.uid in self._pods:
            raise ValueError(f"pod {pod_info.key} is already in the cache")
        self._pods[pod_info.uid] = _PodState(pod_info, node_name, assumed=True)
        self._add_to_node(pod_info, node_name)

    def finish_binding(self, uid: str) -> None:
        state = self._pods.get(uid)
        if state is not None and state.assumed:
            state.binding_finished = True

    def forget_pod(self, uid: str) -> None:
        """Undo an assumption (binding failed or the pod was rejected after Reserve)."""
        state = self._pods.get(uid)
        if state is not None and state.assumed:
            del self._pods[uid]
            self._remove_from_node(state.pod_info, state.node_name)

    def is_assumed(self, uid: str) -> bool:
        state = self._pods.get(uid)
        return state is not None and state.assumed

    def add_pod(self, pod: Obj) -> None:
        """A bound pod seen by the informer: confirm our assumption or account it anew."""
        uid, node_name = uid_of(pod), (pod.get("spec") or {}).get("nodeName") or ""
        state = self._pods.get(uid)
        if state is not None:
            if state.node_name != node_name:  # bound elsewhere than we assumed: believe the API server
                log.warning("pod %s assumed on %s was bound to %s", state.pod_info.key, state.node_name, node_name)
            self._remove_from_node(state.pod_info, state.node_name)
        pod_info = PodInfo(pod)
        self._pods[uid] = _PodState(pod_info, node_name, assumed=False)
        self._add_to_node(pod_info, node_name)

    def update_pod(self, old: Obj, new: Obj) -> None:
        self.add_pod(new)

    def remove_pod(self, pod: Obj) -> bool:
        """Forget the pod (bound or assumed) with this uid; False when the cache did not hold it."""
        state = self._pods.pop(uid_of(pod), None)
        if state is None:
            return False
        self._remove_from_node(state.pod_info, state.node_name)
        return True

    def pod_count(self) -> int:
        return len(self._pods)

    # --- snapshot -----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The nodes for one scheduling cycle (shares NodeInfo objects: valid until the cycle next awaits)."""
        return Snapshot(self._node_list, self._nodes)

    def _add_to_node(self, pod_info: PodInfo, node_name: str) -> None:
        info = self._nodes.get(node_name)
        if info is not None:
            info.add_pod(pod_info)
            info.generation += 1

    def _remove_from_node(self, pod_info: PodInfo, node_name: str) -> None:
        info = self._nodes.get(node_name)
        if info is not None and info.remove_pod(pod_info):
            info.generation += 1
