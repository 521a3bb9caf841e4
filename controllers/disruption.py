"""The disruption controller: keep every PodDisruptionBudget's status true, so evictions can trust it.

The API server's ``pods/eviction`` (apiserver/server/eviction.py) refuses an eviction with 429 when the
matching budget's ``status.disruptionsAllowed`` is 0 or its ``observedGeneration`` is behind, and otherwise
consumes one allowed disruption, recording the pod in ``status.disruptedPods``. This controller computes
that status from the pods the budget selects (policy/v1: a null selector selects nothing, ``{}``
everything):

* ``expectedPods`` / ``desiredHealthy``: with ``minAvailable`` as an integer, the number of selected pods
  and that integer; with ``maxUnavailable`` (integer or percentage) or a percentage ``minAvailable``, the
  sum of the scales of the pods' controllers — a ReplicaSet's ``spec.replicas``, or its Deployment's when
  a Deployment controls it, a StatefulSet's ``spec.replicas`` — with percentages rounded up, as
  ``intstr.GetScaledValueFromIntOrPercent(…, true)``. Pods without a controller are left out of that sum
  (event ``UnmanagedPods``); a pod whose controller cannot be found fails the sync.
* ``currentHealthy``: selected pods that are Ready, not being deleted and not in ``disruptedPods``.
* ``disruptionsAllowed``: ``currentHealthy - desiredHealthy``, floored at 0, and 0 while no pod is
  expected; the ``DisruptionAllowed`` condition says True/SufficientPods or False/InsufficientPods.
* ``disruptedPods``: entries the eviction API added are kept until the pod is seen being deleted or
  gone, or for at most ``DELETION_TIMEOUT`` (then event ``NotDeleted`` on the pod); the budget is looked
  at again when the earliest entry expires.

A failing sync (a bad percentage, an unknown controller) writes the fail-safe status: disruptionsAllowed 0
and DisruptionAllowed False/SyncFailed. Conflicts are simply retried.

``spec.unhealthyPodEvictionPolicy`` (IfHealthyBudget / AlwaysAllow) is not read here: in Kubernetes it is
applied by the eviction API (whether a not-ready pod may be evicted without consuming the budget).

Like Kubernetes, a pod carrying the ``DisruptionTarget`` condition (True) that is still not being deleted
``STALE_POD_DISRUPTION_TIMEOUT`` after the condition was set has the condition reset to False (the
eviction or preemption that set it did not go through). Those pods are tracked under keys prefixed
``pod:`` in the same queue.

Simplified relative to Kubernetes 1.35: ReplicationControllers and arbitrary controllers exposing a
``/scale`` subresource (custom resources) are not looked up — their pods fail the sync with
"found no controllers"; changes of a controller's scale are noticed on the next pod or budget event,
as in Kubernetes, which has no handlers on those informers either; the stale-condition reset uses a
strategic merge patch of ``pods/status`` instead of a server-side apply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from controllers.controller import Controller, ControllerContext
from controllers.podutil import is_ready
from machinery.cache import NAMESPACE_INDEX
from machinery.client import DEPLOYMENTS, POD_DISRUPTION_BUDGETS, PODS, REPLICA_SETS, STATEFUL_SETS
from machinery.errors import StatusError, is_conflict, is_not_found
from machinery.labels import selector_from_label_selector
from machinery.meta import (
    controller_ref,
    deep_copy,
    is_being_deleted,
    key_of,
    labels_of,
    name_of,
    namespace_of,
    now_rfc3339,
    parse_rfc3339,
    split_key,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

DELETION_TIMEOUT = timedelta(minutes=2)  # how long an evicted pod may take to start being deleted
STALE_POD_DISRUPTION_TIMEOUT = timedelta(minutes=2)
POD_KEY_PREFIX = "pod:"

CONDITION_DISRUPTION_ALLOWED = "DisruptionAllowed"
REASON_SUFFICIENT = "SufficientPods"
REASON_INSUFFICIENT = "InsufficientPods"
REASON_SYNC_FAILED = "SyncFailed"
DISRUPTION_TARGET = "DisruptionTarget"


class SyncError(Exception):
    """The budget's status cannot be computed (written as the fail-safe status)."""


class DisruptionController(Controller):
    NAME = "disruption"
    WORKERS = 5  # Kubernetes runs one worker; budgets are independent keys, so more are safe

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.budgets = self.informer(POD_DISRUPTION_BUDGETS)
        self.pods = self.informer(PODS)
        self.replica_sets = self.informer(REPLICA_SETS)
        self.deployments = self.informer(DEPLOYMENTS)
        self.stateful_sets = self.informer(STATEFUL_SETS)
        self.budgets.add_event_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_pod_add(self, pod: Obj) -> None:
        self._enqueue_budget_of(pod)
        self._enqueue_stale_check(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        self._enqueue_budget_of(new)
        if labels_of(old) != labels_of(new):
            self._enqueue_budget_of(old)
        self._enqueue_stale_check(new)

    def on_pod_delete(self, pod: Obj) -> None:
        self._enqueue_budget_of(pod)

    def _enqueue_budget_of(self, pod: Mapping[str, Any]) -> None:
        """Like getPdbForPod: the first matching budget (a pod should have only one)."""
        budgets = budgets_for_pod(self.budgets.store.by_index(NAMESPACE_INDEX, namespace_of(pod)), pod)
        if budgets:
            self.enqueue(budgets[0])

    def _enqueue_stale_check(self, pod: Mapping[str, Any]) -> None:
        wait = stale_disruption_wait(pod, self.clock.now())
        if wait is not None:
            self.queue.add_after(POD_KEY_PREFIX + key_of(pod), wait)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(POD_KEY_PREFIX):
            return await self.sync_stale_pod_disruption(key.removeprefix(POD_KEY_PREFIX))
        pdb = self.budgets.store.get(key)
        if pdb is None:
            return None
        try:
            return await self.try_sync(pdb)
        except StatusError as err:
            if is_conflict(err) or is_not_found(err):
                raise  # retried with the newer object (or it is gone: the next look finds nothing)
            await self.fail_safe(pdb, err.message)
            raise
        except SyncError as err:
            await self.fail_safe(pdb, str(err))
            raise

    async def try_sync(self, pdb: Obj) -> float | None:
        """Compute and write the budget's status; returns when to look again (an expiring disrupted pod)."""
        now = self.clock.now()
        pods = self.pods_for_budget(pdb)
        if not pods:
            self.recorder.event(pdb, "Normal", "NoPods", "No matching pods found")
        expected, desired, unmanaged = self.expected_pod_count(pdb, pods)
        if unmanaged:
            self.recorder.event(
                pdb, "Normal", "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget (selector: {_selector_text(pdb)}) were found to be "
                "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result "
                'in undefined behavior. To account for these pods please set ".spec.minAvailable" field of the '
                "PDB to an integer value.")
        disrupted, recheck = self.disrupted_pod_map(pdb, pods, now)
        healthy = count_healthy(pods, disrupted, now)
        status = budget_status(pdb, healthy, desired, expected, disrupted, now)
        if not same_status(status, pdb.get("status") or {}):
            updated = deep_copy(pdb)
            updated["status"] = status
            await self.client.replace_status(POD_DISRUPTION_BUDGETS, updated)
        if recheck is None:
            return None
        return max((recheck - now).total_seconds(), 0.0)

    def pods_for_budget(self, pdb: Mapping[str, Any]) -> list[Obj]:
        selector = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
        return [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace_of(pdb))
                if selector.matches(labels_of(p))]

    def expected_pod_count(self, pdb: Mapping[str, Any], pods: list[Obj]) -> tuple[int, int, list[str]]:
        """(expectedPods, desiredHealthy, names of pods without a controller), as getExpectedPodCount."""
        spec = pdb.get("spec") or {}
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None:
            expected, unmanaged = self.expected_scale(pods)
            desired = max(expected - scaled_value(max_unavailable, expected), 0)
            return expected, desired, unmanaged
        if min_available is not None:
            if isinstance(min_available, int):
                return len(pods), min_available, []
            expected, unmanaged = self.expected_scale(pods)
            return expected, scaled_value(min_available, expected), unmanaged
        return 0, 0, []

    def expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        """The sum of the scales of the pods' controllers (each counted once) and the unmanaged pods."""
        scales: dict[str, int] = {}
        seen_refs: set[str] = set()
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(name_of(pod))
                continue
            if ref.get("uid") in seen_refs:
                continue
            found = self.controller_scale(ref, namespace_of(pod))
            if found is None:
                raise SyncError(f'found no controllers for pod "{name_of(pod)}"')
            seen_refs.add(ref.get("uid") or "")
            uid, scale = found
            scales[uid] = scale
        return sum(scales.values()), unmanaged

    def controller_scale(self, ref: Mapping[str, Any], namespace: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller a pod's ref names: its Deployment for a Deployment's ReplicaSet."""
        kind, group = ref.get("kind"), (ref.get("apiVersion") or "").partition("/")[0]
        if group != "apps":
            return None
        if kind == "StatefulSet":
            sts = _matching(self.stateful_sets.store.get_by_name(namespace, ref.get("name") or ""), ref)
            return None if sts is None else (uid_of(sts), _replicas(sts))
        if kind != "ReplicaSet":
            return None
        rs = _matching(self.replica_sets.store.get_by_name(namespace, ref.get("name") or ""), ref)
        if rs is None:
            return None
        owner = controller_ref(rs)
        if owner is not None and owner.get("kind") == "Deployment":
            deployment = _matching(self.deployments.store.get_by_name(namespace, owner.get("name") or ""), owner)
            return None if deployment is None else (uid_of(deployment), _replicas(deployment))
        return uid_of(rs), _replicas(rs)

    def disrupted_pod_map(self, pdb: Mapping[str, Any], pods: list[Obj],
                          now: datetime) -> tuple[dict[str, str], datetime | None]:
        """buildDisruptedPodMap: the disruptedPods entries still pending, and when the earliest expires."""
        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        recheck: datetime | None = None
        for pod in pods:
            name = name_of(pod)
            if is_being_deleted(pod) or name not in recorded:
                continue
            expires = _parse_time(recorded[name]) + DELETION_TIMEOUT
            if expires < now:
                self.recorder.event(pod, "Warning", "NotDeleted",
                                    f"Pod was expected by PDB {namespace_of(pdb)}/{name_of(pdb)} to be deleted "
                                    "but it wasn't")
                continue
            kept[name] = recorded[name]
            recheck = expires if recheck is None or expires < recheck else recheck
        return kept, recheck

    async def fail_safe(self, pdb: Obj, message: str) -> None:
        """No disruptions while the status cannot be computed (failSafe)."""
        updated = deep_copy(pdb)
        status = updated.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        status["conditions"] = set_condition(status.get("conditions") or [], {
            "type": CONDITION_DISRUPTION_ALLOWED, "status": "False", "reason": REASON_SYNC_FAILED,
            "message": message, "observedGeneration": status.get("observedGeneration", 0)}, self.clock.now())
        if same_status(updated["status"], pdb.get("status") or {}):
            return
        try:
            await self.client.replace_status(POD_DISRUPTION_BUDGETS, updated)
        except StatusError as err:
            log.info("disruption %s: writing the fail-safe status failed: %s", key_of(pdb), err.message)

    # --- stale DisruptionTarget conditions ---------------------------------------------------------

    async def sync_stale_pod_disruption(self, key: str) -> float | None:
        namespace, name = split_key(key)
        pod = self.pods.store.get_by_name(namespace, name)
        if pod is None:
            return None
        wait = stale_disruption_wait(pod, self.clock.now())
        if wait is None:
            return None
        if wait > 0:
            return wait
        patch = {"status": {"conditions": [{"type": DISRUPTION_TARGET, "status": "False",
                                            "lastTransitionTime": now_rfc3339(self.clock.now())}]}}
        try:
            await self.client.patch(PODS, name, patch, namespace, patch_type="strategic", subresource="status")
        except StatusError as err:
            if is_not_found(err):
                return None
            raise
        return None


# --- pure rules ---------------------------------------------------------------------------------------


def budgets_for_pod(budgets: list[Obj], pod: Mapping[str, Any]) -> list[Obj]:
    """The budgets in the pod's namespace whose selector matches it (sorted by name for determinism)."""
    labels = labels_of(pod)
    matching = [b for b in budgets
                if selector_from_label_selector((b.get("spec") or {}).get("selector")).matches(labels)]
    return sorted(matching, key=name_of)


def scaled_value(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with roundUp: an int as is, ``"N%"`` of total rounded up."""
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value.endswith("%"):
        raise SyncError(f"invalid value for IntOrString: invalid value {value!r}")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise SyncError(f"invalid value for IntOrString: invalid value {value!r}") from None
    return math.ceil(percent * total / 100)


def count_healthy(pods: list[Obj], disrupted: Mapping[str, str], now: datetime) -> int:
    """Ready pods not being deleted and not already counted as disrupted (countHealthyPods)."""
    healthy = 0
    for pod in pods:
        if is_being_deleted(pod):
            continue
        since = disrupted.get(name_of(pod))
        if since is not None and _parse_time(since) + DELETION_TIMEOUT > now:
            continue
        if is_ready(pod):
            healthy += 1
    return healthy


def budget_status(pdb: Mapping[str, Any], healthy: int, desired: int, expected: int,
                  disrupted: Mapping[str, str], now: datetime) -> Obj:
    """The status updatePdbStatus writes (conditions keep their transition time while unchanged)."""
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    old = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation", 0)
    status: Obj = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                   "disruptionsAllowed": allowed, "observedGeneration": generation}
    if disrupted:
        status["disruptedPods"] = dict(disrupted)
    condition = {"type": CONDITION_DISRUPTION_ALLOWED, "status": "True" if allowed > 0 else "False",
                 "reason": REASON_SUFFICIENT if allowed > 0 else REASON_INSUFFICIENT, "message": "",
                 "observedGeneration": generation}
    status["conditions"] = set_condition(old.get("conditions") or [], condition, now)
    return status


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal up to what serialization drops: empty maps/lists, empty condition messages."""
    return _normalized(a) == _normalized(b)


def _normalized(status: Mapping[str, Any]) -> Obj:
    result = {k: v for k, v in status.items() if v not in ({}, [], None)}
    if "conditions" in result:
        result["conditions"] = sorted(({k: v for k, v in c.items() if v not in ("", None)}
                                       for c in result["conditions"]), key=lambda c: c.get("type") or "")
    return result


def set_condition(conditions: list[Obj], wanted: Obj, now: datetime) -> list[Obj]:
    """meta.SetStatusCondition: replace the condition of that type, keeping lastTransitionTime when the
    status did not change."""
    result = [deep_copy(c) for c in conditions if c.get("type") != wanted["type"]]
    previous = next((c for c in conditions if c.get("type") == wanted["type"]), None)
    condition = dict(wanted)
    if previous is not None and previous.get("status") == wanted["status"] and previous.get("lastTransitionTime"):
        condition["lastTransitionTime"] = previous["lastTransitionTime"]
    else:
        condition["lastTransitionTime"] = now_rfc3339(now)
    result.append(condition)
    return result


def stale_disruption_wait(pod: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds until a not-deleted pod's True DisruptionTarget condition is stale (0: now); None if none."""
    if is_being_deleted(pod):
        return None
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == DISRUPTION_TARGET and condition.get("status") == "True":
            since = condition.get("lastTransitionTime")
            if not since:
                return 0.0
            remaining = (_parse_time(since) + STALE_POD_DISRUPTION_TIMEOUT - now).total_seconds()
            return max(remaining, 0.0)
    return None


def _matching(obj: Obj | None, ref: Mapping[str, Any]) -> Obj | None:
    return obj if obj is not None and uid_of(obj) == ref.get("uid") else None


def _replicas(obj: Mapping[str, Any]) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _parse_time(text: str) -> datetime:
    return parse_rfc3339(text)


def _selector_text(pdb: Mapping[str, Any]) -> str:
    return str(selector_from_label_selector((pdb.get("spec") or {}).get("selector")))
