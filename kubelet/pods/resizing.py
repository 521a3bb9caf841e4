"""In-place pod resize on the node: admit the new resources, apply them to running containers, report.

Each sync of a running pod compares its spec resources (desired) with what the kubelet admitted
(:class:`~kubelet.allocation.AllocationCheckpoint`). A resize that fits is admitted (the checkpoint
changes), one that does not waits as ``PodResizePending`` (Deferred: fits the node but not beside the
other pods; Infeasible: more than the node has). Admitted resources are then applied to each running
container with UpdateContainerResources — the same container keeps running — unless its
``resizePolicy`` asks for a restart, or the new memory limit is below what the container uses now
(refused politely: the old limit stays and ``PodResizeInProgress`` carries the reason). The decisions
themselves are pure (:mod:`kubelet.resize`); this module carries them out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubelet.allocation import AllocationCheckpoint, spec_resources
from kubelet.cri import CriError, RuntimeClient
from kubelet.pods import podspec
from kubelet.pods.actions import Kill
from kubelet.pods.runtimestate import PodRuntime
from kubelet.resize import (
    decide_resize,
    memory_decrease_refused,
    needs_update,
    resize_conditions,
    restart_needed,
    status_resources,
)
from kubelet.resources import container_resources, pod_requests
from machinery.clock import REAL_CLOCK, Clock
from machinery.quantity import Quantity

log = logging.getLogger(__name__)


class PodResizer:
    def __init__(self, runtime: RuntimeClient, checkpoint: AllocationCheckpoint, *,
                 others: Callable[[str], Iterable[Mapping[str, Any]]], clock: Clock = REAL_CLOCK) -> None:
        self.runtime = runtime
        self.checkpoint = checkpoint
        self.others = others  # pod uid → the other pods admitted on this node
        self.clock = clock

    def allocated(self, pod: Mapping[str, Any]) -> dict[str, dict]:
        """The pod's admitted resources; a pod seen for the first time is admitted with its spec's."""
        if not self.checkpoint.known(pod):
            self.checkpoint.set_allocated(pod, self.checkpoint.allocated(pod))
        return self.checkpoint.allocated(pod)

    def _others_requests(self, uid: str) -> dict[str, Quantity]:
        total: dict[str, Quantity] = {}
        for other in self.others(uid):
            for name, q in pod_requests(other, resources=self.checkpoint.allocated(other)).items():
                total[name] = total[name] + q if name in total else q
        return total

    async def sync(self, pod: Mapping[str, Any], runtime: PodRuntime, *, allocatable: Mapping[str, str],
                   memory_capacity: int) -> tuple[dict[str, dict], list[Kill], list[dict[str, Any]],
                                                  dict[str, dict[str, Any]]]:
        """Admit and apply; returns (allocated resources, containers to restart, resize conditions,
        ``containerStatuses[].resources`` per running container)."""
        uid = pod["metadata"]["uid"]
        allocated = self.allocated(pod)
        decision = decide_resize(pod, allocated, allocatable, self._others_requests(uid))
        restart: set[str] = set()  # containers whose resizePolicy restarts them for what this admission changed
        if decision.action == "apply":
            before = allocated
            self.checkpoint.set_allocated(pod, spec_resources(pod))
            allocated = self.checkpoint.allocated(pod)
            restart = {c["name"] for c in podspec.all_containers(pod)
                       if restart_needed(c, before.get(c["name"]), allocated.get(c["name"]))}
        restarts: list[Kill] = []
        errors: list[str] = []
        pending = False
        reported: dict[str, dict[str, Any]] = {}
        for container in [*podspec.sidecars(pod), *podspec.regular_containers(pod)]:
            name = container["name"]
            record = runtime.latest(name)
            if record is None or not record.running:
                continue
            expected = container_resources(pod, container, node_memory_capacity=memory_capacity,
                                           resources=allocated.get(name))
            actual = record.resources
            reported[name] = status_resources(allocated.get(name), actual)
            if actual is None or not needs_update(expected, actual):
                continue
            if name in restart:
                restarts.append(Kill(record, dict(container), "Killing",
                                     f"Container {name} resize requires a restart, will be restarted"))
                pending = True
                continue
            error = await self._apply(record.id, expected, actual)
            if error:
                errors.append(error)
            else:
                reported[name] = status_resources(allocated.get(name), expected)
        conditions = resize_conditions(decision, pending, "; ".join(errors) or None, self.clock.now(),
                                       observed_generation=(pod.get("metadata") or {}).get("generation"))
        return allocated, restarts, conditions, reported

    async def _apply(self, container_id: str, expected, actual) -> str | None:
        if 0 < expected.memory_limit_in_bytes < (actual.memory_limit_in_bytes or 1 << 62):
            try:
                stats = await self.runtime.container_stats(container_id)
                usage = stats.memory.working_set_bytes.value
            except CriError:
                usage = 0
            refused = memory_decrease_refused(expected.memory_limit_in_bytes, usage)
            if refused:
                return refused
        try:
            await self.runtime.update_container_resources(container_id, expected)
        except CriError as err:
            log.warning("resizing container %s failed: %s", container_id, err)
            return f"updating the container's resources failed: {err.details}"
        return None
