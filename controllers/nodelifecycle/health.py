"""Pure rules of node health: when a node is lost, what its conditions become, which taints it should carry.

The node lifecycle controller judges a node by *probes*: the last time (on the controller's own monotonic
clock, never the node's timestamps, so clock skew does not matter) it saw either the node's Ready condition
``lastHeartbeatTime`` or its Lease's ``renewTime`` change. No probe for longer than the grace period means
the kubelet is gone: every kubelet condition becomes Unknown. The taints follow the conditions — the
``NoSchedule`` taints the scheduler honours (``TaintNodesByCondition``) and the ``NoExecute`` taints that
evict pods (``not-ready`` / ``unreachable``). Zone states and the per-zone eviction limiter gate how fast
``NoExecute`` taints are added when many nodes fail at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from machinery.meta import format_rfc3339

Obj = dict[str, Any]

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

# condition type → (status that taints, taint key), the TaintNodesByCondition table
CONDITION_TAINTS: dict[str, list[tuple[str, str]]] = {
    "Ready": [("False", TAINT_NOT_READY), ("Unknown", TAINT_UNREACHABLE)],
    "MemoryPressure": [("True", "node.kubernetes.io/memory-pressure")],
    "DiskPressure": [("True", "node.kubernetes.io/disk-pressure")],
    "PIDPressure": [("True", "node.kubernetes.io/pid-pressure")],
    "NetworkUnavailable": [("True", "node.kubernetes.io/network-unavailable")],
}
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
CONTROLLER_NO_SCHEDULE_KEYS = frozenset({TAINT_UNSCHEDULABLE} | {k for v in CONDITION_TAINTS.values() for _, k in v})
CONTROLLER_NO_EXECUTE_KEYS = frozenset({TAINT_NOT_READY, TAINT_UNREACHABLE})

REASON_UNKNOWN = "NodeStatusUnknown"
MESSAGE_STOPPED = "Kubelet stopped posting node status."
REASON_NEVER_UPDATED = "NodeStatusNeverUpdated"
MESSAGE_NEVER = "Kubelet never posted node status."

ZONE_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone")
STATE_NORMAL, STATE_PARTIAL, STATE_FULL = "Normal", "PartialDisruption", "FullDisruption"


def condition(node: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond
    return None


def ready_status(node: Mapping[str, Any]) -> str:
    """``True``, ``False`` or ``Unknown`` (a node that never reported is Unknown)."""
    cond = condition(node, "Ready")
    return str(cond.get("status") or "Unknown") if cond else "Unknown"


def heartbeat_of(node: Mapping[str, Any]) -> str:
    """What changes every time the kubelet posts status (the probe signal from the Node itself)."""
    cond = condition(node, "Ready")
    return str((cond or {}).get("lastHeartbeatTime") or "")


def renew_time_of(lease: Mapping[str, Any] | None) -> str:
    return str(((lease or {}).get("spec") or {}).get("renewTime") or "")


@dataclass
class NodeHealth:
    """What the controller remembers of one node between reconciles."""

    probe: float  # monotonic time of the last observed heartbeat or lease renewal
    heartbeat: str
    renew_time: str

    def observe(self, heartbeat: str, renew_time: str, now: float) -> None:
        if heartbeat != self.heartbeat or renew_time != self.renew_time:
            self.probe, self.heartbeat, self.renew_time = now, heartbeat, renew_time


def unknown_conditions(node: Mapping[str, Any], now: datetime) -> list[Obj] | None:
    """The node's conditions with every kubelet condition Unknown, or None when they already are.

    Conditions already Unknown keep their lastTransitionTime; the lastHeartbeatTime is kept as posted
    (it is the kubelet's, so a later real heartbeat is recognised as a change).
    """
    stamp = format_rfc3339(now)
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
    changed = False
    for kind in KUBELET_CONDITIONS:
        cond = next((c for c in conditions if c.get("type") == kind), None)
        if cond is None:
            conditions.append({"type": kind, "status": "Unknown", "reason": REASON_NEVER_UPDATED,
                               "message": MESSAGE_NEVER, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
            changed = True
        elif cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason=REASON_UNKNOWN, message=MESSAGE_STOPPED, lastTransitionTime=stamp)
            changed = True
    return conditions if changed else None


def desired_no_schedule(node: Mapping[str, Any]) -> set[str]:
    """Keys of the NoSchedule taints the node's conditions and spec.unschedulable call for."""
    keys: set[str] = set()
    for kind, rules in CONDITION_TAINTS.items():
        status = str((condition(node, kind) or {}).get("status") or "")  # a missing condition taints nothing
        keys |= {key for wanted, key in rules if status == wanted}
    if (node.get("spec") or {}).get("unschedulable"):
        keys.add(TAINT_UNSCHEDULABLE)
    return keys


def desired_no_execute(node: Mapping[str, Any]) -> str | None:
    """The NoExecute taint key for the node's readiness: not-ready (False), unreachable (Unknown) or none (True,
    or no Ready condition yet: a node that has not posted status is given the startup grace period first)."""
    status = (condition(node, "Ready") or {}).get("status")
    return {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE}.get(str(status))


def reconcile_taints(taints: Iterable[Mapping[str, Any]], no_schedule: set[str], no_execute: str | None,
                     now: datetime, *, may_add_no_execute: bool) -> list[Obj] | None:
    """The node's new taint list, or None when nothing changes.

    Only the controller's own taints are touched; others (users', the kubelet's) are kept in place.
    A NoExecute taint kept across reconciles keeps its timeAdded (eviction times count from it).
    """
    current = [dict(t) for t in taints]
    kept: list[Obj] = []
    for taint in current:
        key, effect = taint.get("key"), taint.get("effect")
        if effect == NO_SCHEDULE and key in CONTROLLER_NO_SCHEDULE_KEYS and key not in no_schedule:
            continue
        if effect == NO_EXECUTE and key in CONTROLLER_NO_EXECUTE_KEYS and key != no_execute:
            continue
        kept.append(taint)
    present = {(t.get("key"), t.get("effect")) for t in kept}
    for key in sorted(no_schedule):
        if (key, NO_SCHEDULE) not in present:
            kept.append({"key": key, "effect": NO_SCHEDULE})
    if no_execute is not None and (no_execute, NO_EXECUTE) not in present and may_add_no_execute:
        kept.append({"key": no_execute, "effect": NO_EXECUTE, "timeAdded": format_rfc3339(now)})
    return None if kept == current else kept


def has_taint(node: Mapping[str, Any], key: str, effect: str) -> bool:
    return any(t.get("key") == key and t.get("effect") == effect for t in (node.get("spec") or {}).get("taints") or ())


def zone_of(node: Mapping[str, Any]) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return ":\x00:".join(labels.get(k, "") for k in ZONE_LABELS)


def zone_state(nodes: Iterable[Mapping[str, Any]]) -> str:
    """ComputeZoneState: Full when none is ready, Partial when more than 2 and ≥ 55% are not ready."""
    ready = not_ready = 0
    for node in nodes:
        if ready_status(node) == "True":
            ready += 1
        else:
            not_ready += 1
    if not_ready > 0 and ready == 0:
        return STATE_FULL
    if not_ready > 2 and not_ready / (ready + not_ready) >= UNHEALTHY_ZONE_THRESHOLD:
        return STATE_PARTIAL
    return STATE_NORMAL


UNHEALTHY_ZONE_THRESHOLD = 0.55
LARGE_CLUSTER_SIZE = 50
EVICTION_RATE = 0.1  # nodes per second per zone (--node-eviction-rate)
SECONDARY_EVICTION_RATE = 0.01  # --secondary-node-eviction-rate, for large zones in partial disruption


def eviction_rate(state: str, zone_size: int) -> float:
    """How many nodes per second may be NoExecute-tainted in a zone in ``state``."""
    if state == STATE_PARTIAL:
        return SECONDARY_EVICTION_RATE if zone_size > LARGE_CLUSTER_SIZE else 0.0
    return EVICTION_RATE


class ZoneLimiter:
    """A token bucket per zone with a burst of one: the first node may be tainted at once, the next one
    ``1/rate`` seconds later. ``take`` returns 0 when allowed (and spends the token), else seconds to wait."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def take(self, zone: str, rate: float, now: float) -> float:
        if rate <= 0:
            return float("inf")
        last = self._last.get(zone)
        interval = 1.0 / rate
        if last is None or now - last >= interval:
            self._last[zone] = now
            return 0.0
        return interval - (now - last)
