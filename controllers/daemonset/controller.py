"""The DaemonSet controller: one daemon pod on every eligible node, rolled out revision by revision.

Each reconcile (syncDaemonSet) claims the DaemonSet's pods and ControllerRevisions, finds or creates
the current revision (its ``controller-revision-hash`` labels the new pods), and — only once the
expectations from its previous creations and deletions were observed — creates the missing daemon pods
(pinned to their node by required node affinity on ``metadata.name``, which the scheduler honours),
deletes the ones that must go (see :mod:`controllers.daemonset.plan`), takes the next RollingUpdate step
(``OnDelete`` only replaces pods users delete), prunes old revisions and writes status, so
``kubectl rollout status ds`` can follow the rollout.

Simplifications relative to Kubernetes 1.35:

- failed daemon pods are replaced with a per-node exponential backoff (1 s doubling, 15 min cap) kept in
  memory, as kube-controller-manager does, but without its periodic garbage collection of backoff entries;
- pod creations on a node whose node object is gone are not attempted; scheduled pods on deleted nodes are
  left to the pod garbage collector, unscheduled ones pinned to them are deleted (as Kubernetes);
- the ``pod-template-generation`` label is written but not used to decide whether a pod is up to date (the
  revision hash is);
- node events enqueue every DaemonSet when a node is added or deleted, or its labels, taints or
  ``unschedulable`` change (Kubernetes filters by whether the node's eligibility changed for each one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from controllers.claim import ControllerRefManager, cached_controller, selecting
from controllers.controller import Controller, ControllerContext, RetryError
from controllers.daemonset.history import History
from controllers.daemonset.plan import Plan, plan_manage, plan_rolling_update
from controllers.daemonset.util import (
    REVISION_HASH_LABEL,
    ROLLING_UPDATE,
    calculate_status,
    pod_template_for,
    strategy_type,
    target_node_name,
)
from controllers.expectations import Expectations
from controllers.podcontrol import create_in_batches, pod_from_template
from controllers.podutil import is_ready, is_terminating
from machinery.cache import NAMESPACE_INDEX
from machinery.client import NODES, PODS
from machinery.client.resources import CONTROLLER_REVISIONS, DAEMON_SETS
from machinery.errors import StatusError, is_conflict, is_not_found
from machinery.labels import selector_from_label_selector
from machinery.meta import controller_ref, deep_copy, is_being_deleted, key_of, labels_of, name_of, namespace_of, uid_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]

BURST_REPLICAS = 250  # at most this many creations or deletions per reconcile
FAILED_BACKOFF_INITIAL, FAILED_BACKOFF_MAX = 1.0, 900.0


class DaemonSetController(Controller):
    NAME = "daemonset"
    WORKERS = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = DaemonExpectations(ctx.clock)
        self.daemon_sets = self.informer(DAEMON_SETS)
        self.pods = self.informer(PODS)
        self.nodes = self.informer(NODES)
        self.revisions = self.informer(CONTROLLER_REVISIONS)
        self.history = History(self.client, self.revisions)
        self.failed_backoff: dict[tuple[str, str], tuple[float, float]] = {}  # (ds key, node) → (until, delay)
        self.daemon_sets.add_event_handler(self.enqueue, self.on_ds_update, self.on_ds_delete)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        self.nodes.add_event_handler(self.on_node_change, self.on_node_update, self.on_node_change)
        self.revisions.add_event_handler(self.on_revision_change, self.on_revision_update, self.on_revision_change)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_ds_update(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def on_ds_delete(self, ds: Obj) -> None:
        self.expectations.forget(key_of(ds))
        self.enqueue(ds)

    def on_pod_add(self, pod: Obj) -> None:
        if is_terminating(pod):
            self.on_pod_delete(pod)
            return
        owner = self._owner_of(pod)
        if owner is not None:
            self.expectations.creation_observed(key_of(owner))
            self.enqueue(owner)
        else:
            self._enqueue_matching(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
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
                self.queue.add_after(key_of(new_owner), min_ready + 1)
        elif labels_of(old) != labels_of(new) or controller_ref(old) is not None:
            self._enqueue_matching(new)

    def on_pod_delete(self, pod: Obj) -> None:
        owner = self._owner_of(pod)
        if owner is not None:
            self.expectations.deletion_observed(key_of(owner), key_of(pod))
            self.enqueue(owner)

    def on_node_change(self, node: Obj) -> None:
        for ds in self.daemon_sets.store.list():
            self.enqueue(ds)

    def on_node_update(self, old: Obj, new: Obj) -> None:
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if (labels_of(old) != labels_of(new) or old_spec.get("taints") != new_spec.get("taints")
                or old_spec.get("unschedulable") != new_spec.get("unschedulable")):
            self.on_node_change(new)

    def on_revision_change(self, revision: Obj) -> None:
        ref = controller_ref(revision)
        if ref is not None and ref.get("kind") == "DaemonSet":
            self.queue.add(f"{namespace_of(revision)}/{ref.get('name')}")

    def on_revision_update(self, old: Obj, new: Obj) -> None:
        self.on_revision_change(new)

    def _owner_of(self, pod: Mapping[str, Any]) -> Obj | None:
        return cached_controller(self.daemon_sets.store, pod, "DaemonSet")

    def _enqueue_matching(self, pod: Mapping[str, Any]) -> None:
        for owner in selecting(self.daemon_sets.store, pod):
            self.enqueue(owner)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        ds = self.daemon_sets.store.get(key)
        if ds is None:
            self.expectations.forget(key)
            self.failed_backoff = {k: v for k, v in self.failed_backoff.items() if k[0] != key}
            return None
        label_selector = (ds.get("spec") or {}).get("selector") or {}
        if not label_selector.get("matchLabels") and not label_selector.get("matchExpressions"):
            self.recorder.event(ds, "Warning", "SelectingAll", "This daemon set is selecting all pods. "
                                "A non-empty selector is required.")
            return None
        if is_being_deleted(ds):
            return None
        selector = selector_from_label_selector(label_selector)
        nodes = list(self.nodes.store.list())
        pods = await ControllerRefManager(self.client, ds, selector, PODS, DAEMON_SETS).claim(
            p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace_of(ds)))
        node_to_pods = _pods_by_node(pods)
        current, old = await self.history.construct(ds, selector)
        hash_ = labels_of(current).get(REVISION_HASH_LABEL, "")
        requeue: float | None = None
        failure: str | None = None
        if self.expectations.satisfied(key):
            plan = plan_manage(ds, nodes, node_to_pods, hash_, lambda n: self._may_replace_failed(key, n))
            requeue = self._backoff_requeue(key, node_to_pods)
            failure = await self.sync_nodes(ds, plan, hash_)
            if failure is None and self.expectations.satisfied(key) and strategy_type(ds) == ROLLING_UPDATE:
                status = calculate_status(ds, nodes, node_to_pods, hash_, self.clock.now())
                step = plan_rolling_update(ds, nodes, node_to_pods, hash_, status["desiredNumberScheduled"],
                                           self.clock.now())
                failure = await self.sync_nodes(ds, step, hash_)
            await self.history.cleanup(ds, old, pods)
        status_requeue = await self.update_status(ds, nodes, node_to_pods, hash_)
        if failure is not None:
            raise RetryError(f"daemonset {key}: {failure}")
        return _earliest(requeue, status_requeue)

    # --- failed pods: replaced with backoff ------------------------------------------------------

    def _may_replace_failed(self, key: str, node_name: str) -> bool:
        until, delay = self.failed_backoff.get((key, node_name), (0.0, 0.0))
        now = self.clock.monotonic()
        if now < until:
            return False
        if now - until > 2 * FAILED_BACKOFF_MAX:
            delay = 0.0  # quiet for long enough: start again at the first step, as Kubernetes' backoff GC does
        delay = FAILED_BACKOFF_INITIAL if delay == 0 else min(delay * 2, FAILED_BACKOFF_MAX)
        self.failed_backoff[(key, node_name)] = (self.clock.monotonic() + delay, delay)
        return True

    def _backoff_requeue(self, key: str, node_to_pods: Mapping[str, list[Obj]]) -> float | None:
        """When some failed pod waits for its backoff, look again once it ends."""
        waits = [until - self.clock.monotonic() for (k, node), (until, _) in self.failed_backoff.items()
                 if k == key and any((p.get("status") or {}).get("phase") == "Failed"
                                     for p in node_to_pods.get(node) or ())]
        waits = [w for w in waits if w > 0]
        return min(waits) if waits else None

    # --- acting on a plan ------------------------------------------------------------------------

    async def sync_nodes(self, ds: Obj, plan: Plan, hash_: str) -> str | None:
        """Create the pods ``plan`` wants and delete its victims; returns an error message when some failed."""
        key = key_of(ds)
        for node_name in plan.failed_on:
            self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                f"Found failed daemon pod on node {node_name}, will try to kill it")
        create_on = plan.create_on[:BURST_REPLICAS]
        victims = plan.delete[:BURST_REPLICAS]
        if not create_on and not victims:
            return None
        self.expectations.expect(key, len(create_on), [key_of(p) for p in victims])
        errors = await self._create_pods(ds, create_on, hash_)
        errors += await self._delete_pods(ds, victims)
        return errors[0] if errors else None

    async def _create_pods(self, ds: Obj, node_names: list[str], hash_: str) -> list[str]:
        """Slow start (batches of 1, 2, 4, …), stopping after the first batch with a failure."""
        key = key_of(ds)
        outcome = await create_in_batches(node_names, lambda node: self._create_pod(ds, node, hash_))
        for _ in range(len(outcome.errors) + outcome.skipped):
            self.expectations.creation_observed(key)  # failed and skipped creations will not be observed
        for error in outcome.errors:
            if not isinstance(error, StatusError):
                raise error
        return [error.message for error in outcome.errors]

    async def _create_pod(self, ds: Obj, node_name: str, hash_: str) -> Obj:
        template = pod_template_for(ds, hash_, node_name)
        try:
            pod = await self.client.create(PODS, pod_from_template(template, ds, DAEMON_SETS), namespace_of(ds))
        except StatusError as err:
            self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {err.message}")
            raise
        self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {name_of(pod)}")
        return pod

    async def _delete_pods(self, ds: Obj, victims: list[Obj]) -> list[str]:
        key = key_of(ds)

        async def delete(pod: Obj) -> str | None:
            try:
                await self.client.delete(PODS, name_of(pod), namespace_of(pod), preconditions={"uid": uid_of(pod)})
            except StatusError as err:
                self.expectations.deletion_observed(key, key_of(pod))
                if is_not_found(err):
                    return None
                self.recorder.event(ds, "Warning", "FailedDelete", f"Error deleting: {err.message}")
                return err.message
            self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
            return None

        results = await asyncio.gather(*(delete(p) for p in victims))
        return [r for r in results if r is not None]

    # --- status ----------------------------------------------------------------------------------

    async def update_status(self, ds: Obj, nodes: list[Obj], node_to_pods: Mapping[str, list[Obj]],
                            hash_: str) -> float | None:
        status = calculate_status(ds, nodes, node_to_pods, hash_, self.clock.now())
        if status != (ds.get("status") or {}):
            try:
                await self._store_status(ds, status)
            except StatusError as err:
                if is_not_found(err):
                    return None
                raise
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and status["numberReady"] != status["numberAvailable"]:
            return float(min_ready)
        return None

    async def _store_status(self, ds: Obj, status: Obj) -> None:
        """storeDaemonSetStatus: on a conflict (our cache lags our own last write) retry once on a fresh read."""
        updated = deep_copy(ds)
        updated["status"] = status
        try:
            await self.client.replace_status(DAEMON_SETS, updated)
            return
        except StatusError as err:
            if not is_conflict(err):
                raise
        fresh = await self.client.get(DAEMON_SETS, name_of(ds), namespace_of(ds))
        if uid_of(fresh) != uid_of(ds):
            return
        kept = {k: v for k, v in (fresh.get("status") or {}).items() if k in ("collisionCount", "conditions")}
        fresh["status"] = {**status, **kept}
        await self.client.replace_status(DAEMON_SETS, fresh)


class DaemonExpectations(Expectations):
    """Expectations recording creations and deletions of one sync together (a daemon sync may do both)."""

    def expect(self, key: str, creations: int, deletions: list[str]) -> None:
        self.expect_deletions(key, deletions)
        self._items[key].adds = creations


def _pods_by_node(pods: list[Obj]) -> dict[str, list[Obj]]:
    """getNodesToDaemonPods: the claimed pods by the node they run on or are pinned to."""
    result: dict[str, list[Obj]] = {}
    for pod in pods:
        node = target_node_name(pod)
        if node:
            result.setdefault(node, []).append(pod)
    return result


def _earliest(*delays: float | None) -> float | None:
    present = [d for d in delays if d is not None]
    return min(present) if present else None
