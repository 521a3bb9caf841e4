"""The ReplicaSet controller: keep ``spec.replicas`` pods matching the selector, and say so in status.

Level-driven: each reconcile claims the pods (adopting matching orphans, releasing owned pods whose
labels no longer match), then — only when the expectations from its previous actions have been
observed, so a slow watch never causes double creation — creates or deletes the difference:
creations in slow-start batches (1, 2, 4, … so a failing template costs one error, not 500),
deletions in Kubernetes' preference order (unassigned, pending, not ready, … newest first).
Finally it writes status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
terminatingReplicas, observedGeneration and the ReplicaFailure condition) when it changed; a failed
creation or deletion then fails the reconcile, so the key is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controllers.claim import ControllerRefManager, cached_controller, selecting
from controllers.controller import Controller, ControllerContext, RetryError
from controllers.expectations import Expectations
from controllers.podcontrol import create_in_batches, pod_from_template
from controllers.podutil import deletion_order, is_active, is_available, is_ready, is_terminating
from machinery.cache import NAMESPACE_INDEX
from machinery.client import PODS, REPLICA_SETS
from machinery.errors import StatusError, is_not_found
from machinery.labels import selector_from_label_selector, selector_from_set
from machinery.meta import (
    controller_ref,
    deep_copy,
    is_being_deleted,
    key_of,
    labels_of,
    name_of,
    namespace_of,
    now_rfc3339,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

BURST_REPLICAS = 500  # at most this many creations or deletions per reconcile


class ReplicaSetController(Controller):
    NAME = "replicaset"
    WORKERS = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.clock)
        self.replica_sets = self.informer(REPLICA_SETS)
        self.pods = self.informer(PODS)
        self.replica_sets.add_event_handler(self.enqueue, self.on_rs_update, self.on_rs_delete)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_rs_update(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def on_rs_delete(self, rs: Obj) -> None:
        self.expectations.forget(key_of(rs))
        self.enqueue(rs)

    def on_pod_add(self, pod: Obj) -> None:
        if is_terminating(pod):
            self.on_pod_delete(pod)  # a restarted controller sees pods already being deleted as adds
            return
        owner = self._owner_of(pod)
        if owner is not None:
            self.expectations.creation_observed(key_of(owner))
            self.enqueue(owner)
        else:
            self._enqueue_matching(pod)  # an orphan: someone may want to adopt it

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        if old.get("metadata", {}).get("resourceVersion") == new.get("metadata", {}).get("resourceVersion"):
            owner = self._owner_of(new)  # periodic resync
            if owner is not None:
                self.enqueue(owner)
            return
        if is_terminating(new) and not is_terminating(old):
            owner = self._owner_of(new)
            if owner is not None:
                self.expectations.deletion_observed(key_of(owner), key_of(new))
        old_owner, new_owner = self._owner_of(old), self._owner_of(new)
        if old_owner is not None and (new_owner is None or uid_of(old_owner) != uid_of(new_owner)):
            self.enqueue(old_owner)
        if new_owner is not None:
            self.enqueue(new_owner)
            min_ready = int((new_owner.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and is_ready(new) and not is_ready(old):
                self.queue.add_after(key_of(new_owner), min_ready + 1)  # look again when it becomes available
        elif labels_of(old) != labels_of(new) or controller_ref(old) is not None:
            self._enqueue_matching(new)

    def on_pod_delete(self, pod: Obj) -> None:
        owner = self._owner_of(pod)
        if owner is not None:
            self.expectations.deletion_observed(key_of(owner), key_of(pod))
            self.enqueue(owner)

    def _owner_of(self, pod: Mapping[str, Any]) -> Obj | None:
        """The ReplicaSet in the cache named by the pod's controller ref, if the UID matches."""
        return cached_controller(self.replica_sets.store, pod, "ReplicaSet")

    def _enqueue_matching(self, pod: Mapping[str, Any]) -> None:
        for owner in selecting(self.replica_sets.store, pod):
            self.enqueue(owner)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        rs = self.replica_sets.store.get(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        selector = selector_from_label_selector((rs.get("spec") or {}).get("selector"))
        namespace = namespace_of(rs)
        candidates = [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace) if is_active(p)]
        manager = ControllerRefManager(self.client, rs, selector, PODS, REPLICA_SETS)
        pods = await manager.claim(candidates)
        failure: str | None = None
        if self.expectations.satisfied(key) and not is_being_deleted(rs):
            failure = await self.manage_replicas(rs, pods)
        terminating = sum(1 for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace)
                          if is_terminating(p) and _controlled_by(p, rs))
        requeue_after = await self.update_status(rs, pods, terminating, failure)
        if failure is not None:
            # as syncReplicaSet returns manageReplicasErr: retry with backoff. Nothing else may bring the key
            # back (an unchanged status is not rewritten), so a quota raised later would go unnoticed.
            raise RetryError(f"replicaset {key}: {failure}")
        return requeue_after

    async def manage_replicas(self, rs: Obj, pods: list[Obj]) -> str | None:
        """Create or delete pods to reach spec.replicas; returns an error message when some of that failed."""
        key = key_of(rs)
        diff = len(pods) - _desired(rs)
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            return await self._create_pods(rs, count)
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = _pods_to_delete(pods, count)
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            return await self._delete_pods(rs, victims)
        return None

    async def _create_pods(self, rs: Obj, count: int) -> str | None:
        """Slow start: batches of 1, 2, 4, … stopping at the first batch with a failure."""
        key = key_of(rs)
        template = (rs.get("spec") or {}).get("template") or {}
        outcome = await create_in_batches(
            range(count), lambda _i: self.client.create(PODS, pod_from_template(template, rs, REPLICA_SETS)))
        for pod in outcome.created:
            self.recorder.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {name_of(pod)}")
        for _ in range(len(outcome.errors) + outcome.skipped):
            self.expectations.creation_observed(key)  # failed and skipped creations will never be observed
        if not outcome.errors:
            return None
        first = outcome.errors[0]
        self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {_message(first)}")
        if not isinstance(first, StatusError):
            raise first
        return _message(first)

    async def _delete_pods(self, rs: Obj, victims: list[Obj]) -> str | None:
        key = key_of(rs)

        async def delete(pod: Obj) -> None:
            try:
                await self.client.delete(PODS, name_of(pod), namespace_of(pod), preconditions={"uid": uid_of(pod)})
                self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
            except StatusError as err:
                if not is_not_found(err):
                    self.expectations.deletion_observed(key, key_of(pod))  # the deletion did not happen
                    self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {_message(err)}")
                    raise

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        return _message(errors[0]) if errors else None

    # --- status ----------------------------------------------------------------------------------

    async def update_status(self, rs: Obj, pods: list[Obj], terminating: int, failure: str | None) -> float | None:
        """Write status when it changed (a conflict raises: the key is retried with the newer object)."""
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        status = calculate_status(rs, pods, terminating, failure, self.clock.now())
        if status != (rs.get("status") or {}):
            updated = deep_copy(rs)
            updated["status"] = status
            try:
                await self.client.replace_status(REPLICA_SETS, updated)
            except StatusError as err:
                if is_not_found(err):
                    return None
                raise
        if min_ready > 0 and status.get("readyReplicas", 0) != status.get("availableReplicas", 0):
            return float(min_ready)
        return None


def calculate_status(rs: Obj, active: list[Obj], terminating: int, failure: str | None, now: datetime) -> Obj:
    """The status Kubernetes would write for ``rs`` given its active pods and how many are terminating."""
    spec, old = rs.get("spec") or {}, rs.get("status") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = selector_from_set(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active if template_labels.matches(labels_of(p))),
        "readyReplicas": sum(1 for p in active if is_ready(p)),
        "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
        "terminatingReplicas": terminating,
        "observedGeneration": (rs.get("metadata") or {}).get("generation", 0),
    }
    conditions = [c for c in old.get("conditions") or () if c.get("type") != "ReplicaFailure"]
    previous = next((c for c in old.get("conditions") or () if c.get("type") == "ReplicaFailure"), None)
    if failure is not None:
        reason = "FailedCreate" if len(active) < _desired(rs) else "FailedDelete"
        if previous is not None and previous.get("reason") == reason and previous.get("message") == failure:
            conditions.append(previous)
        else:
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": reason,
                               "message": failure, "lastTransitionTime": now_rfc3339(now)})
    if conditions:
        status["conditions"] = conditions
    return {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}


def _desired(rs: Mapping[str, Any]) -> int:
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    per_node: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    return deletion_order(pods, per_node)[:count]


def _controlled_by(pod: Mapping[str, Any], rs: Mapping[str, Any]) -> bool:
    ref = controller_ref(pod)
    return ref is not None and ref.get("uid") == uid_of(rs)


def _message(err: BaseException) -> str:
    return err.message if isinstance(err, StatusError) else (str(err) or type(err).__name__)

