"""What a DaemonSet sync should do, decided from the caches alone: nodes needing a pod, pods to delete.

Two pure planners, following kube-controller-manager's daemon controller:

- :func:`plan_manage` (``manage`` / ``podsShouldBeOnNode``): a node that should run the daemon and has
  no pod gets one; a node where it should not continue running loses all its pods; failed (and
  succeeded) pods are replaced; extra pods on a node are deleted (the oldest kept — with surge, a new
  pod and a still-needed old one may coexist); unscheduled pods pinned to a node that no longer exists
  are deleted.
- :func:`plan_rolling_update` (``rollingUpdate``): with ``maxSurge`` 0, old pods are deleted while at most
  ``maxUnavailable`` nodes are without an available pod (old pods that are not available anyway go
  first, for free); with ``maxSurge`` > 0, new pods are created next to old ones on at most ``maxSurge``
  nodes at a time and each old pod is deleted once its replacement is available.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controllers.daemonset.util import (
    allows_surge,
    by_creation,
    is_pod_updated,
    node_should_run_daemon_pod,
    split_by_hash,
    surge_and_unavailable,
)
from controllers.podutil import is_available, is_ready
from machinery.meta import is_being_deleted, name_of

Obj = dict[str, Any]


@dataclass
class Plan:
    create_on: list[str] = field(default_factory=list)  # node names needing a new pod
    delete: list[Obj] = field(default_factory=list)  # pods to delete
    failed_on: list[str] = field(default_factory=list)  # nodes whose failed pods are being replaced


def plan_manage(ds: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]], node_to_pods: Mapping[str, list[Obj]],
                hash_: str, may_replace_failed: Callable[[str], bool] = lambda _: True) -> Plan:
    plan = Plan()
    node_names = set()
    for node in nodes:
        node_names.add(name_of(node))
        _plan_node(plan, ds, node, node_to_pods.get(name_of(node)) or [], hash_, may_replace_failed)
    for node_name, pods in node_to_pods.items():  # getUnscheduledPodsWithoutNode
        if node_name not in node_names:
            plan.delete += [p for p in pods if not (p.get("spec") or {}).get("nodeName") and not is_being_deleted(p)]
    return plan


def _plan_node(plan: Plan, ds: Mapping[str, Any], node: Mapping[str, Any], pods: list[Obj], hash_: str,
               may_replace_failed: Callable[[str], bool]) -> None:
    node_name = name_of(node)
    should_run, should_continue = node_should_run_daemon_pod(node, ds)
    if should_run and not pods:
        plan.create_on.append(node_name)
        return
    if not should_continue:
        plan.delete += [p for p in pods if not is_being_deleted(p)]
        return
    running: list[Obj] = []
    for pod in pods:
        if is_being_deleted(pod):
            continue
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Failed":
            if may_replace_failed(node_name):
                plan.delete.append(pod)
                plan.failed_on.append(node_name)
        elif phase == "Succeeded":
            plan.delete.append(pod)
        else:
            running.append(pod)
    if not allows_surge(ds):
        plan.delete += by_creation(running)[1:]  # keep the oldest
        return
    if len(running) <= 1:
        if not running and should_run and not any(is_being_deleted(p) for p in pods):
            plan.create_on.append(node_name)  # surging needs one live pod on the node
        return
    _plan_surged_node(plan, running, hash_)


def _plan_surged_node(plan: Plan, running: list[Obj], hash_: str) -> None:
    """Keep the oldest new pod, and the oldest old pod only while it is ready and the new one is not."""
    oldest_new = oldest_old = None
    for pod in by_creation(running):
        if is_pod_updated(pod, hash_):
            if oldest_new is None:
                oldest_new = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        plan.delete.append(pod)
    if oldest_new is not None and oldest_old is not None and (not is_ready(oldest_old) or is_ready(oldest_new)):
        plan.delete.append(oldest_old)


def plan_rolling_update(ds: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
                        node_to_pods: Mapping[str, list[Obj]], hash_: str, desired: int, now: datetime) -> Plan:
    """The next step of a RollingUpdate, within maxUnavailable / maxSurge over ``desired`` nodes."""
    max_surge, max_unavailable = surge_and_unavailable(ds, desired)
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    nodes_by_name = {name_of(n): n for n in nodes}
    if max_surge == 0:
        return _without_surge(node_to_pods, hash_, max_unavailable, min_ready, now)
    return _with_surge(ds, nodes_by_name, node_to_pods, hash_, max_surge, min_ready, now)


def _without_surge(node_to_pods: Mapping[str, list[Obj]], hash_: str, max_unavailable: int, min_ready: int,
                   now: datetime) -> Plan:
    unavailable = 0
    free: list[Obj] = []  # old pods that are not available: replacing them costs nothing
    candidates: list[Obj] = []
    for node_name in sorted(node_to_pods):
        new_pod, old_pod, ok = split_by_hash(node_to_pods[node_name], hash_)
        if not ok or (new_pod is None) == (old_pod is None):
            unavailable += 1  # several pods, none, or both: manage sorts it out; count it as unavailable
        elif new_pod is not None:
            unavailable += 0 if is_available(new_pod, min_ready, now) else 1
        elif not is_available(old_pod, min_ready, now):
            free.append(old_pod)
        elif unavailable < max_unavailable:
            candidates.append(old_pod)
    budget = max(0, min(max_unavailable - unavailable, len(candidates)))
    return Plan(delete=free + candidates[:budget])


def _with_surge(ds: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]], node_to_pods: Mapping[str, list[Obj]],
                hash_: str, max_surge: int, min_ready: int, now: datetime) -> Plan:
    surged = 0
    free: list[str] = []  # nodes whose old pod is not available: surge there at once
    candidates: list[str] = []
    plan = Plan()
    for node_name in sorted(node_to_pods):
        new_pod, old_pod, ok = split_by_hash(node_to_pods[node_name], hash_)
        if not ok:
            surged += 1
        elif old_pod is None:
            continue  # nothing to update here (manage creates a missing pod)
        elif new_pod is None:
            if not is_available(old_pod, min_ready, now):
                node = nodes.get(node_name)
                if node is not None and node_should_run_daemon_pod(node, ds)[0]:
                    free.append(node_name)
            elif surged < max_surge:
                candidates.append(node_name)
        elif not is_available(new_pod, min_ready, now):
            surged += 1  # waiting for the new pod to become available
        else:
            plan.delete.append(old_pod)  # the replacement is available: the old pod goes
    budget = max(0, min(max_surge - surged, len(candidates)))
    plan.create_on = free + candidates[:budget]
    return plan
