"""The node lifecycle controller: notice lost nodes, taint them, and evict pods that do not tolerate it.

One key per Node (its name). A reconcile

1. *monitors health*: the node's Ready ``lastHeartbeatTime`` and its Lease's ``renewTime``
   (``kube-node-lease/<node>``) are probes; with no new probe for the grace period
   (``--node-monitor-grace-period``, 40 s; 60 s for a node that never posted Ready) every kubelet condition
   becomes Unknown (reason NodeStatusUnknown, "Kubelet stopped posting node status.");
2. *taints*: the NoSchedule taints of TaintNodesByCondition (not-ready, unreachable, memory/disk/pid-pressure,
   network-unavailable, unschedulable) follow the conditions at once; the NoExecute taint (unreachable when
   Ready is Unknown, not-ready when False) is added through a per-zone rate limiter and removed as soon as the
   node is Ready again;
3. *evicts*: pods on the node that do not tolerate its NoExecute taints get the DisruptionTarget condition and
   are deleted, those with tolerationSeconds once that has passed (see :mod:`.eviction`).

Simplifications relative to Kubernetes 1.35 (kube-controller-manager's node-lifecycle-controller plus the
taint-eviction-controller): both run as this one controller, keyed by node; the health check runs when the
node or its Lease changes and at the moment its grace period would expire instead of every 5 s; eviction
windows count from the taint's ``timeAdded``; pods on a lost node are not marked NotReady; in "master
disruption mode" (every zone fully disrupted) no new NoExecute taint is added but existing ones are not
removed; the eviction limiter is a burst-1 token bucket per zone (0.1 node/s; in a zone with ≥ 55% of more
than two nodes unhealthy 0.01 node/s when it has more than 50 nodes, else none).

``KUBEMINI_NODE_MONITOR_GRACE_PERIOD`` (seconds), read when the controller is built, overrides the class
attribute ``NODE_MONITOR_GRACE_PERIOD`` — so a test can run a controller-manager with a short grace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from controllers.controller import Controller, ControllerContext
from controllers.nodelifecycle.eviction import disruption_condition, eviction_due, no_execute_taints
from controllers.nodelifecycle.health import (
    CONTROLLER_NO_EXECUTE_KEYS,
    NO_EXECUTE,
    STATE_FULL,
    NodeHealth,
    ZoneLimiter,
    condition,
    desired_no_execute,
    desired_no_schedule,
    eviction_rate,
    has_taint,
    heartbeat_of,
    reconcile_taints,
    renew_time_of,
    unknown_conditions,
    zone_of,
    zone_state,
)
from machinery.cache import NODE_NAME_INDEX
from machinery.client import LEASES, NODES, PODS
from machinery.errors import StatusError, is_not_found
from machinery.meta import deep_copy, format_rfc3339, is_being_deleted, name_of, namespace_of, parse_rfc3339, uid_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
GRACE_ENV = "KUBEMINI_NODE_MONITOR_GRACE_PERIOD"


class NodeLifecycleController(Controller):
    NAME = "nodelifecycle"
    WORKERS = 5
    NODE_MONITOR_GRACE_PERIOD = 40.0
    NODE_STARTUP_GRACE_PERIOD = 60.0
    NODE_MONITOR_PERIOD = 5.0  # how soon a node held back by the eviction limiter is looked at again

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.grace_period = _grace_from_env(self.NODE_MONITOR_GRACE_PERIOD)
        self.startup_grace_period = max(self.NODE_STARTUP_GRACE_PERIOD, self.grace_period)
        self.health: dict[str, NodeHealth] = {}
        self.first_tainted: dict[str, float] = {}  # node → when a NoExecute taint without timeAdded was first seen
        # (node, pod uid) → when the pod's eviction window began: kept while the node stays NoExecute-tainted,
        # so a taint added later or a not-ready↔unreachable swap does not restart it (as the taint manager)
        self.window_start: dict[tuple[str, str], datetime] = {}
        self.limiter = ZoneLimiter()
        self.nodes = self.informer(NODES)
        self.pods = self.informer(PODS)
        self.leases = self.informer(LEASES, namespace=LEASE_NAMESPACE)
        self.nodes.add_event_handler(self.enqueue, self.on_node_update, self.on_node_delete)
        self.leases.add_event_handler(self.on_lease, lambda old, new: self.on_lease(new), None)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, None)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_node_update(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def on_node_delete(self, node: Obj) -> None:
        self.enqueue(node)  # reconcile forgets it

    def on_lease(self, lease: Obj) -> None:
        if namespace_of(lease) == LEASE_NAMESPACE:
            self.queue.add(name_of(lease))

    def on_pod_add(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.store.get(node_name) if node_name else None
        if node is not None and no_execute_taints(node):
            self.queue.add(node_name)  # a pod landed on a node it may have to leave

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName"):
            self.on_pod_add(new)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.store.get(key)
        if node is None:
            self.health.pop(key, None)
            self.first_tainted.pop(key, None)
            self._forget_windows(key, keep=set())
            return None
        node, recheck = await self.monitor_health(node)
        node, held_back = await self.update_taints(node)
        evict_next = await self.evict_pods(node)
        waits = [w for w in (recheck, held_back, evict_next) if w is not None]
        return min(waits) if waits else None

    async def monitor_health(self, node: Obj) -> tuple[Obj, float | None]:
        """Mark the node's conditions Unknown once its grace period passed without a probe.

        Returns the (possibly updated) node and the seconds until its grace period would expire.
        """
        name, mono = name_of(node), self.clock.monotonic()
        lease = self.leases.store.get_by_name(LEASE_NAMESPACE, name)
        health = self.health.get(name)
        if health is None:
            health = self.health[name] = NodeHealth(mono, heartbeat_of(node), renew_time_of(lease))
        health.observe(heartbeat_of(node), renew_time_of(lease), mono)
        grace = self.grace_period if condition(node, "Ready") else self.startup_grace_period
        remaining = health.probe + grace - mono
        if remaining > 0:
            return node, remaining + 0.01
        conditions = unknown_conditions(node, self.clock.now())
        if conditions is None:
            return node, None  # already Unknown: the next heartbeat or renewal brings the node back
        updated = deep_copy(node)
        updated.setdefault("status", {})["conditions"] = conditions
        updated = await self.client.replace_status(NODES, updated)
        health.heartbeat = heartbeat_of(updated)  # our own write is not a heartbeat
        log.info("node %s: no heartbeat for %.0fs, conditions now Unknown", name, mono - health.probe)
        self.recorder.event(updated, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        return updated, None

    async def update_taints(self, node: Obj) -> tuple[Obj, float | None]:
        """Make the controller's taints match the conditions; returns the node and, when the eviction limiter
        held a NoExecute taint back, the seconds until it is worth trying again."""
        no_schedule = desired_no_schedule(node)
        no_execute = desired_no_execute(node)
        wait: float | None = None
        if no_execute is not None and not has_taint(node, no_execute, NO_EXECUTE):
            swapping = any(has_taint(node, k, NO_EXECUTE) for k in CONTROLLER_NO_EXECUTE_KEYS)
            wait = 0.0 if swapping else self.eviction_wait(node)
        taints = reconcile_taints((node.get("spec") or {}).get("taints") or (), no_schedule, no_execute,
                                  self.clock.now(), may_add_no_execute=wait == 0.0)
        if taints is not None:
            updated = deep_copy(node)
            updated.setdefault("spec", {})["taints"] = taints
            node = await self.client.replace(NODES, updated)
        if wait is None or wait == 0.0:
            return node, None
        return node, min(wait, self.NODE_MONITOR_PERIOD)

    def eviction_wait(self, node: Obj) -> float:
        """0 when the node's zone may have one more node NoExecute-tainted now, else seconds to wait."""
        zones: dict[str, list[Mapping[str, Any]]] = {}
        for other in self.nodes.store.list():
            if name_of(other) != name_of(node):
                zones.setdefault(zone_of(other), []).append(other)
        zone = zone_of(node)
        zones.setdefault(zone, []).append(node)
        states = {z: zone_state(members) for z, members in zones.items()}
        if all(state == STATE_FULL for state in states.values()):
            log.info("every zone is fully disrupted: no NoExecute taint for node %s", name_of(node))
            return float("inf")
        rate = eviction_rate(states[zone], len(zones[zone]))
        return self.limiter.take(zone, rate, self.clock.monotonic())

    async def evict_pods(self, node: Obj) -> float | None:
        """Evict the pods whose toleration of the node's NoExecute taints ran out; returns the seconds until
        the next one does."""
        name = name_of(node)
        taints = no_execute_taints(node)
        if not taints:
            self.first_tainted.pop(name, None)
            self._forget_windows(name, keep=set())
            return None
        added = self._tainted_since(name, taints)
        now = self.clock.now()
        soonest: float | None = None
        pods = self.pods.store.by_index(NODE_NAME_INDEX, name)
        self._forget_windows(name, keep={uid_of(p) for p in pods})
        for pod in pods:
            if is_being_deleted(pod):
                continue
            due = eviction_due(pod, taints, self.window_start.setdefault((name, uid_of(pod)), added), now)
            if due is None:
                continue
            if due <= 0:
                await self.evict(pod)
            else:
                soonest = due if soonest is None else min(soonest, due)
        return soonest

    def _forget_windows(self, node: str, keep: set[str]) -> None:
        for key in [k for k in self.window_start if k[0] == node and k[1] not in keep]:
            del self.window_start[key]

    def _tainted_since(self, name: str, taints: list[Mapping[str, Any]]) -> datetime:
        """When the newest NoExecute taint was added (for one without timeAdded: when first seen here)."""
        stamps = [parse_rfc3339(t["timeAdded"]) for t in taints if t.get("timeAdded")]
        if len(stamps) == len(taints):
            return max(stamps)
        first = self.first_tainted.setdefault(name, self.clock.monotonic())
        seen = self.clock.now() - timedelta(seconds=self.clock.monotonic() - first)
        return max([*stamps, seen])

    async def evict(self, pod: Mapping[str, Any]) -> None:
        """Add the DisruptionTarget condition, then delete the pod (the very pod: uid precondition)."""
        name, namespace = name_of(pod), namespace_of(pod)
        patch = {"status": {"conditions": [disruption_condition(format_rfc3339(self.clock.now()))]}}
        try:
            await self.client.patch(PODS, name, patch, namespace, patch_type="strategic", subresource="status")
            self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}")
            await self.client.delete(PODS, name, namespace, preconditions={"uid": uid_of(pod)})
        except StatusError as exc:
            if not is_not_found(exc):
                raise
        log.info("evicted pod %s/%s from tainted node %s", namespace, name, (pod.get("spec") or {}).get("nodeName"))


def _grace_from_env(default: float) -> float:
    raw = os.environ.get(GRACE_ENV)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %.0fs", GRACE_ENV, raw, default)
        return default
    return value if value > 0 else default

