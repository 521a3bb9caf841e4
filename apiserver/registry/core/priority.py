"""The Priority admission plugin: a pod's ``spec.priority`` comes from its PriorityClass.

Pod creation looks the class up (``priorityClassName``, or the class with ``globalDefault: true``
when the pod names none), copies its value into ``spec.priority`` and, unless the pod set one, its
``preemptionPolicy``. A class that does not exist is refused with kube-apiserver's 403. The two
system classes are resolved by the pod strategy itself (they need no lookup). This needs other
objects than the one being written, so it runs as an asynchronous step of the pod store's create,
like the Service allocator, rather than in the (synchronous) strategy.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.generic import ResourceStore
from apiserver.registry.options import ListOptions
from machinery import errors as api

Obj = dict[str, Any]

SYSTEM_CLASS_NAMES = frozenset({"system-cluster-critical", "system-node-critical"})


class PriorityAdmission:
    def __init__(self, priority_classes: ResourceStore) -> None:
        self.priority_classes = priority_classes

    async def admit(self, pod: Obj) -> None:
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            return
        name = spec.get("priorityClassName")
        if name in SYSTEM_CLASS_NAMES:
            return
        if name:
            priority_class = await self._get(name)
            if priority_class is None:
                raise api.forbidden_error("pods", (pod.get("metadata") or {}).get("name", ""),
                                          f"no PriorityClass with name {name} was found")
        else:
            priority_class = await self._global_default()
            if priority_class is None:
                return
            spec["priorityClassName"] = priority_class["metadata"]["name"]
        value = int(priority_class.get("value") or 0)
        given = spec.get("priority")
        if given is not None and given != value:
            raise api.forbidden_error(
                "pods", (pod.get("metadata") or {}).get("name", ""),
                f"the integer value of priority ({given}) must not be provided in pod spec; priority admission "
                f"controller computed {value} from the given PriorityClass name")
        spec["priority"] = value
        if not spec.get("preemptionPolicy") and priority_class.get("preemptionPolicy"):
            spec["preemptionPolicy"] = priority_class["preemptionPolicy"]

    async def _get(self, name: str) -> Obj | None:
        try:
            return await self.priority_classes.get(None, name, resource_version="0")
        except api.StatusError as err:
            if api.is_not_found(err):
                return None
            raise

    async def _global_default(self) -> Obj | None:
        listed = await self.priority_classes.list(None, ListOptions(resource_version="0"))
        defaults = [pc for pc in listed.items if pc.get("globalDefault")]
        # several defaults can only exist through races; Kubernetes then uses the lowest value
        return min(defaults, key=lambda pc: int(pc.get("value") or 0), default=None)
