"""Whether this node can run a pod bound to it: the kubelet's admission (GeneralPredicates and taints).

The scheduler checked the same things, but a pod can be bound directly (``spec.nodeName`` set at creation)
or the node can have changed since; so before running a new pod the kubelet checks that its requests fit
beside the pods it already runs, that the node matches its nodeSelector and required node affinity, that
no NoExecute (or, for directly bound pods, NoSchedule) taint goes untolerated and that its host ports are
free. A rejected pod is failed at once with the Kubernetes reason (``OutOfcpu``, ``NodeAffinity``,
``Taint``, ``NodePorts``) and a message naming what did not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelet.resources import pod_requests, scaled
from machinery.nodeaffinity import compile_node_selector, node_selector_matches
from machinery.quantity import Quantity, parse_quantity_or_none
from machinery.taints import NO_EXECUTE, NO_SCHEDULE, find_untolerated_taint

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str


def admit(pod: Pod, node: Mapping[str, Any], running: Iterable[Pod]) -> Rejection | None:
    """None when the node can run ``pod`` beside ``running`` (the pods it already admitted)."""
    running = list(running)
    for check in (_fits_resources, _matches_node, _tolerates_taints, _host_ports_free):
        rejection = check(pod, node, running)
        if rejection is not None:
            return rejection
    return None


def _fits_resources(pod: Pod, node: Mapping[str, Any], running: list[Pod]) -> Rejection | None:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    pods_allowed = parse_quantity_or_none(allocatable.get("pods"))
    if pods_allowed is not None and len(running) + 1 > pods_allowed.value():
        return Rejection("OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: "
                                      f"{len(running)}, capacity: {pods_allowed.value()}")
    wanted = pod_requests(pod)
    used: dict[str, Quantity] = {}
    for other in running:
        for name, q in pod_requests(other).items():
            used[name] = used[name] + q if name in used else q
    for name, q in sorted(wanted.items()):
        if q.is_zero():
            continue
        capacity = parse_quantity_or_none(allocatable.get(name))
        have = capacity if capacity is not None else Quantity()
        in_use = used.get(name, Quantity())
        if in_use + q > have:
            return Rejection(f"OutOf{name}", f"Node didn't have enough resource: {name}, requested: "
                                             f"{scaled(name, q)}, used: {scaled(name, in_use)}, capacity: "
                                             f"{scaled(name, have)}")
    return None


def _matches_node(pod: Pod, node: Mapping[str, Any], running: list[Pod]) -> Rejection | None:
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    failed = Rejection("NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node "
                                       "affinity/selector")
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return failed
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required and not node_selector_matches(compile_node_selector(required), labels, meta.get("name") or ""):
        return failed
    return None


def _tolerates_taints(pod: Pod, node: Mapping[str, Any], running: list[Pod]) -> Rejection | None:
    effects = frozenset((NO_EXECUTE,))
    conditions = (pod.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "PodScheduled" for c in conditions):  # bound directly: never scheduled
        effects = frozenset((NO_EXECUTE, NO_SCHEDULE))
    taint = find_untolerated_taint((node.get("spec") or {}).get("taints"),
                                   (pod.get("spec") or {}).get("tolerations") or [], effects)
    if taint is None:
        return None
    return Rejection("Taint", "Predicate TaintToleration failed: node(s) had untolerated taint "
                              f"{{{taint.get('key') or ''}: {taint.get('value') or ''}}}")


def _host_ports(pod: Pod) -> set[tuple[str, int]]:
    spec = pod.get("spec") or {}
    ports = set()
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                ports.add((port.get("protocol") or "TCP", port["hostPort"]))
    return ports


def _host_ports_free(pod: Pod, node: Mapping[str, Any], running: list[Pod]) -> Rejection | None:
    wanted = _host_ports(pod)
    if not wanted:
        return None
    taken = set().union(*(_host_ports(other) for other in running)) if running else set()
    if wanted & taken:
        return Rejection("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the "
                                      "requested pod ports")
    return None
