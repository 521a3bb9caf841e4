"""The kubelet's in-place resize decisions, kept pure so every branch is a unit test.

A resize arrives as a pod whose spec resources (desired) differ from what the kubelet admitted
(allocated, :mod:`kubelet.allocation`). The kubelet then:

1. decides (:func:`decide_resize`): admit it now ("apply"), later ("deferred": fits the node but not
   beside the other pods), or never on this node ("infeasible": more than the node has at all);
2. reports it through the ``PodResizePending`` / ``PodResizeInProgress`` conditions
   (:func:`resize_conditions`);
3. actuates the admitted resources with UpdateContainerResources, except that a container whose
   ``resizePolicy`` says ``RestartContainer`` for a changed resource is restarted instead
   (:func:`restart_needed`), and a memory limit is never lowered below what the container uses now
   (:func:`memory_decrease_refused`: the old limit stays, the resize stays in progress with an Error);
4. reports ``resources`` in the container statuses (:func:`status_resources`; ``allocatedResources`` is
   simply the allocated requests); the resize is in progress while :func:`needs_update` says the runtime
   does not yet run the allocated values.

Simplified relative to Kubernetes 1.35: no resize priority queue (each pod is decided on its own
sync, in arrival order), no "actuated" checkpoint (the runtime's reported resources are compared with
the allocated ones instead), no CPU/memory-manager or swap infeasibility reasons, no eviction of
lower-priority pods for a critical pod's resize.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kubelet.allocation import normalize, spec_resources
from kubelet.resources import milli_cpu_to_quota, milli_cpu_to_shares, pod_requests, scaled
from machinery.podspec import is_sidecar
from machinery.quantity import BINARY_SI, Quantity, parse_quantity_or_none
from proto.cri import api_pb2 as cri

RESIZABLE = ("cpu", "memory")
PENDING = "PodResizePending"
IN_PROGRESS = "PodResizeInProgress"
REASON_DEFERRED = "Deferred"
REASON_INFEASIBLE = "Infeasible"
REASON_ERROR = "Error"
RESTART_CONTAINER = "RestartContainer"
NOT_REQUIRED = "NotRequired"

Action = Literal["none", "apply", "deferred", "infeasible"]


@dataclass(frozen=True)
class ResizeDecision:
    action: Action
    message: str = ""


def resources_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Semantic equality of two ``{requests, limits}``: ``1`` equals ``1000m``, ``{}`` equals absent."""
    left, right = normalize(a), normalize(b)
    for key in ("requests", "limits"):
        names = set(left[key]) | set(right[key])
        for name in names:
            x, y = parse_quantity_or_none(left[key].get(name)), parse_quantity_or_none(right[key].get(name))
            if (x is None) != (y is None) or (x is not None and x != y):
                return False
    return True


def resizable_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The containers a resize may change: app containers and sidecars."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    out = [c for c in spec.get("containers") or () if isinstance(c, dict)]
    out += [c for c in spec.get("initContainers") or () if isinstance(c, dict) and is_sidecar(c)]
    return out


def resize_requested(pod: Mapping[str, Any], allocated: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether any resizable container's spec resources differ from the allocated ones."""
    desired = spec_resources(pod)
    return any(not resources_equal(desired.get(c.get("name")), allocated.get(c.get("name")))
               for c in resizable_containers(pod))


# --- admission --------------------------------------------------------------------------------------


def decide_resize(
    pod: Mapping[str, Any],
    allocated: Mapping[str, Mapping[str, Any]],
    node_allocatable: Mapping[str, Any],
    other_pods_requests: Mapping[str, Quantity],
) -> ResizeDecision:
    """Admit, defer or refuse the pod's desired (spec) resources against the node.

    ``allocated``: this pod's admitted resources; ``node_allocatable``: the node's allocatable list
    (``{"cpu": "4", "memory": "8Gi"}``); ``other_pods_requests``: the summed effective requests of the
    other pods admitted on the node. Only cpu and memory are checked (the only resizable resources).
    A resize that raises no request is always admitted.
    """
    if not resize_requested(pod, allocated):
        return ResizeDecision("none")
    wanted = pod_requests(pod)
    admitted = pod_requests(pod, resources=allocated)
    if not any(scaled(r, wanted.get(r)) > scaled(r, admitted.get(r)) for r in RESIZABLE):
        return ResizeDecision("apply")
    capacity = {r: parse_quantity_or_none(node_allocatable.get(r)) for r in RESIZABLE}
    for name in ("memory", "cpu"):  # Kubernetes names memory first when both are too big
        cap = capacity[name]
        if cap is not None and scaled(name, wanted.get(name)) > scaled(name, cap):
            return ResizeDecision("infeasible", f"Node didn't have enough capacity: {name}, requested: "
                                                f"{scaled(name, wanted.get(name))}, capacity: {scaled(name, cap)}")
    for name in ("cpu", "memory"):  # the admission (fit) check's order
        cap = capacity[name]
        requested, used = scaled(name, wanted.get(name)), scaled(name, other_pods_requests.get(name))
        if cap is not None and requested + used > scaled(name, cap):
            return ResizeDecision("deferred", f"Node didn't have enough resource: {name}, requested: {requested}, "
                                              f"used: {used}, capacity: {scaled(name, cap)}")
    return ResizeDecision("apply")


# --- status -----------------------------------------------------------------------------------------


def _timestamp(now: datetime | str) -> str:
    if isinstance(now, str):
        return now
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resize_conditions(
    decision: ResizeDecision | None,
    in_progress: bool,
    error: str | None,
    now: datetime | str,
    *,
    observed_generation: int | None = None,
) -> list[dict[str, Any]]:
    """The resize conditions the pod status should carry now (none when nothing is pending or running).

    ``PodResizePending`` (reason ``Deferred``/``Infeasible`` and the decision's message) while the
    desired resources are not admitted; ``PodResizeInProgress`` while admitted resources are not yet
    actuated — reason ``""``, or ``Error`` with ``error`` when actuation failed or was refused. Both may
    be present. The caller keeps an existing condition's ``lastTransitionTime`` when its status did
    not change.
    """
    stamp = _timestamp(now)
    out = []
    if decision is not None and decision.action in ("deferred", "infeasible"):
        reason = REASON_DEFERRED if decision.action == "deferred" else REASON_INFEASIBLE
        out.append(_condition(PENDING, reason, decision.message, stamp, observed_generation))
    if in_progress or error:
        out.append(_condition(IN_PROGRESS, REASON_ERROR if error else "", error or "", stamp, observed_generation))
    return out


def _condition(kind: str, reason: str, message: str, stamp: str, generation: int | None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


# --- actuation --------------------------------------------------------------------------------------


def resize_policy(container: Mapping[str, Any], resource: str) -> str:
    """The container's restart policy for resizing ``resource`` (default ``NotRequired``)."""
    for entry in container.get("resizePolicy") or ():
        if isinstance(entry, dict) and entry.get("resourceName") == resource:
            return entry.get("restartPolicy") or NOT_REQUIRED
    return NOT_REQUIRED


def changed_resources(old_resources: Mapping[str, Any] | None, new_resources: Mapping[str, Any] | None) -> set[str]:
    """The resource names whose request or limit differs between two ``{requests, limits}``."""
    old, new = normalize(old_resources), normalize(new_resources)
    changed = set()
    for key in ("requests", "limits"):
        for name in set(old[key]) | set(new[key]):
            if not resources_equal({key: {name: old[key].get(name)}}, {key: {name: new[key].get(name)}}):
                changed.add(name)
    return changed


def restart_needed(container: Mapping[str, Any], old_resources: Mapping[str, Any] | None,
                   new_resources: Mapping[str, Any] | None) -> bool:
    """True when a changed resource's resizePolicy is ``RestartContainer`` (``RestartContainer`` wins
    over ``NotRequired`` when several resources change)."""
    return any(resize_policy(container, name) == RESTART_CONTAINER
               for name in changed_resources(old_resources, new_resources))


def memory_decrease_refused(new_limit: int | None, usage_bytes: int) -> str | None:
    """A polite refusal when ``new_limit`` is below the container's current memory usage, else None.

    The kubelet then keeps the old limit (nothing is forced: on cgroup v1 the kernel would refuse, on
    v2 it would OOM-kill) and reports ``PodResizeInProgress`` with reason ``Error`` and this message;
    the next sync tries again. Kubernetes makes the same best-effort check, only for containers whose
    memory resizePolicy is ``NotRequired`` (a ``RestartContainer`` container restarts with the new
    limit instead).
    """
    if new_limit is None or new_limit <= 0 or usage_bytes <= new_limit:
        return None
    return (f"attempting to set container memory limit ({new_limit}) below current usage ({usage_bytes}): "
            "not decreasing memory limit below current usage; the resize is retried when usage drops")


def update_order(names: Iterable[str], old: Mapping[str, Mapping[str, Any]],
                 new: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The containers to update, limit decreases first (so the pod never exceeds its cgroup meanwhile),
    then the rest in the given order; unchanged containers are left out."""
    changed = [n for n in names if changed_resources(old.get(n), new.get(n))]

    def shrinks(name: str) -> bool:
        before, after = normalize(old.get(name))["limits"], normalize(new.get(name))["limits"]
        for resource in RESIZABLE:
            was, now = parse_quantity_or_none(before.get(resource)), parse_quantity_or_none(after.get(resource))
            if was is not None and now is not None and now < was:
                return True
        return False

    return [n for n in changed if shrinks(n)] + [n for n in changed if not shrinks(n)]


# --- status fields ----------------------------------------------------------------------------------


def status_resources(allocated: Mapping[str, Any] | None,
                     actual: cri.LinuxContainerResources | None) -> dict[str, Any]:
    """``containerStatuses[i].resources``: the allocated ``{requests, limits}`` with the cpu request,
    cpu limit and memory limit the runtime reports in their place when they differ (a non-running
    container has no report: ``actual`` None gives the allocated values). A reported value that the
    allocated one would produce anyway (shares and quota round) keeps the allocated text."""
    out = normalize(allocated)
    requests, limits = out["requests"], out["limits"]
    if actual is not None:
        cpu_request = parse_quantity_or_none(requests.get("cpu"))
        cpu_limit = parse_quantity_or_none(limits.get("cpu"))
        if cpu_request is not None and actual.cpu_shares > 0 \
                and milli_cpu_to_shares(cpu_request.milli_value()) != actual.cpu_shares:
            requests["cpu"] = str(Quantity.from_milli(actual.cpu_shares * 1000 // 1024))
        if cpu_limit is not None and actual.cpu_quota > 0 and actual.cpu_period > 0 \
                and milli_cpu_to_quota(cpu_limit.milli_value(), actual.cpu_period) != actual.cpu_quota:
            limits["cpu"] = str(Quantity.from_milli(actual.cpu_quota * 1000 // actual.cpu_period))
        mem_limit = parse_quantity_or_none(limits.get("memory"))
        if mem_limit is not None and actual.memory_limit_in_bytes > 0 \
                and mem_limit.value() != actual.memory_limit_in_bytes:
            limits["memory"] = str(Quantity.from_int(actual.memory_limit_in_bytes, BINARY_SI))
    return {key: value for key, value in out.items() if value}


def needs_update(expected: cri.LinuxContainerResources, actual: cri.LinuxContainerResources | None) -> bool:
    """Whether the runtime's reported resources differ from ``expected`` (from
    :func:`kubelet.resources.container_resources` with the allocated resources) in what a resize
    changes: cpu shares, cpu quota and the memory limit. No report counts as different."""
    if actual is None:
        return True
    if expected.cpu_shares != actual.cpu_shares:
        return True
    if expected.cpu_quota > 0 and (expected.cpu_quota, expected.cpu_period) != (actual.cpu_quota, actual.cpu_period):
        return True
    return expected.memory_limit_in_bytes > 0 and expected.memory_limit_in_bytes != actual.memory_limit_in_bytes
