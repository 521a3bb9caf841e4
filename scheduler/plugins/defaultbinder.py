"""DefaultBinder: assigns a pod to its node by POSTing a Binding to the pod's ``binding`` subresource.

This is the only write the scheduling cycle makes: the API server sets ``spec.nodeName`` (and the
PodScheduled condition), failing with a Conflict if the pod is already bound or with NotFound if it is gone.
The Binding carries the pod's uid, so a pod deleted and re-created under the same name is never bound
by mistake. Any failure comes back as an ERROR status; the runtime then forgets the assumed pod and
retries it with backoff.
"""

from __future__ import annotations

from typing import Any

from machinery.client import PODS
from scheduler.framework import CycleState, Handle, PodInfo, Status
from scheduler.framework.status import error


def binding_for(pod_info: PodInfo, node_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod_info.name, "namespace": pod_info.namespace, "uid": pod_info.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


class DefaultBinder:
    NAME = "DefaultBinder"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        if handle is None:
            raise ValueError("DefaultBinder needs a handle with an API client")
        self.handle = handle

    async def bind(self, state: CycleState, pod_info: PodInfo, node_name: str) -> Status | None:
        try:
            await self.handle.client.create(PODS, binding_for(pod_info, node_name), pod_info.namespace,
                                            subresource="binding", name=pod_info.name)
        except Exception as exc:  # API errors and transport failures alike: the runtime retries the pod
            return error(exc)
        return None
