"""The StatefulSet controller: pods with stable names, storage and order, rolled by revision.

Each reconcile of a set claims its pods (members named ``<set>-<ordinal>`` matching the selector) and
its ControllerRevisions, makes sure a revision exists for the current template (the *update
revision*; a template equal to an older revision's brings that revision back with a new number, as
``kubectl rollout undo`` relies on), runs one :class:`~controllers.statefulset.sync.PodSync` pass and
writes status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
currentRevision, updateRevision, collisionCount and observedGeneration, so ``kubectl rollout status
sts`` works. Old revisions beyond ``revisionHistoryLimit`` that no pod uses are deleted.

There are no expectations as in the ReplicaSet controller: pods have fixed names, so creating a pod
the cache has not seen yet fails with AlreadyExists and deletes carry the pod's UID as precondition.

Simplification relative to Kubernetes 1.35: a set being deleted is left alone (the garbage
collector removes its pods; claims with ``whenDeleted: Delete`` carry the set as owner from their
creation), and the StatefulSet conditions are kept as they are, never written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from controllers.claim import ControllerRefManager, cached_controller, selecting
from controllers.controller import Controller, ControllerContext
from controllers.statefulset import util
from controllers.statefulset.sync import PodSync
from machinery.cache import NAMESPACE_INDEX
from machinery.client import CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS
from machinery.errors import StatusError, is_already_exists, is_not_found
from machinery.labels import selector_from_label_selector
from machinery.meta import (
    controller_ref,
    deep_copy,
    is_being_deleted,
    labels_of,
    name_of,
    namespace_of,
    new_controller_ref,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MAX_COLLISIONS = 100  # give up (and retry with backoff) after this many hash collisions in one reconcile


class StatefulSetController(Controller):
    NAME = "statefulset"
    WORKERS = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = self.informer(STATEFUL_SETS)
        self.pods = self.informer(PODS)
        self.revisions = self.informer(CONTROLLER_REVISIONS)
        self.claims = self.informer(PERSISTENT_VOLUME_CLAIMS)
        self.sets.add_event_handler(self.enqueue, self.on_set_update, self.enqueue)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        self.revisions.add_event_handler(self.on_revision, lambda _old, new: self.on_revision(new), self.on_revision)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_set_update(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def on_pod_add(self, pod: Obj) -> None:
        owner = self._owner_of(pod)
        if owner is not None:
            self.enqueue(owner)
        else:
            self._enqueue_matching(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        old_owner, new_owner = self._owner_of(old), self._owner_of(new)
        if old_owner is not None and (new_owner is None or uid_of(old_owner) != uid_of(new_owner)):
            self.enqueue(old_owner)
        if new_owner is not None:
            self.enqueue(new_owner)
        elif labels_of(old) != labels_of(new) or controller_ref(old) is not None:
            self._enqueue_matching(new)

    def on_pod_delete(self, pod: Obj) -> None:
        owner = self._owner_of(pod)
        if owner is not None:
            self.enqueue(owner)

    def on_revision(self, revision: Obj) -> None:
        owner = self._owner_of(revision)
        if owner is not None:
            self.enqueue(owner)

    def _owner_of(self, obj: Mapping[str, Any]) -> Obj | None:
        """The StatefulSet in the cache named by the object's controller ref, if the UID matches."""
        return cached_controller(self.sets.store, obj, "StatefulSet")

    def _enqueue_matching(self, pod: Mapping[str, Any]) -> None:
        for owner in selecting(self.sets.store, pod):
            self.enqueue(owner)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.store.get(key)
        if sts is None or is_being_deleted(sts):
            return None
        selector = selector_from_label_selector((sts.get("spec") or {}).get("selector"))
        namespace = namespace_of(sts)
        pods = await ControllerRefManager(self.client, sts, selector, PODS, STATEFUL_SETS).claim(
            self.pods.store.by_index(NAMESPACE_INDEX, namespace), adoptable=lambda p: util.is_member_of(sts, p))
        pods = [p for p in pods if util.is_member_of(sts, p)]
        revisions = await ControllerRefManager(self.client, sts, selector, CONTROLLER_REVISIONS,
                                               STATEFUL_SETS).claim(
            self.revisions.store.by_index(NAMESPACE_INDEX, namespace))
        current, update, collisions = await self.ensure_revisions(sts, revisions)
        sync = PodSync(self.client, self.recorder, sts, current, update, self._claim, self.clock.now())
        try:
            await sync.run(pods)
        finally:
            # as Kubernetes: status is written even when the pass failed half-way
            await self.update_status(sts, pods, name_of(current), name_of(update), collisions)
        await self.truncate_history(sts, revisions, pods, current, update)
        return sync.requeue_after

    def _claim(self, namespace: str, name: str) -> Obj | None:
        return self.claims.store.get_by_name(namespace, name)

    # --- revisions -------------------------------------------------------------------------------

    async def ensure_revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collision count), creating or renumbering the update revision."""
        revisions = util.sorted_revisions(revisions)
        collisions = int((sts.get("status") or {}).get("collisionCount") or 0)
        latest = util.revision_number(revisions[-1]) if revisions else 0
        wanted: Obj = {"data": util.revision_data(sts)}
        equal = [r for r in revisions if util.equal_revision(r, wanted)]
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            update = await self._renumber(equal[-1], latest + 1)
        else:
            update, collisions = await self._create_revision(sts, wanted["data"], latest + 1, collisions)
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if name_of(r) == current_name), update)
        return current, update, collisions

    async def _renumber(self, revision: Obj, number: int) -> Obj:
        """A rollback to an older template: that revision becomes the newest."""
        updated = deep_copy(revision)
        updated["revision"] = number
        return await self.client.replace(CONTROLLER_REVISIONS, updated)

    async def _create_revision(self, sts: Obj, data: Obj, number: int, collisions: int) -> tuple[Obj, int]:
        """Create ``<set>-<hash>``; on a name clash with different data, bump the collision count and rehash."""
        for _ in range(MAX_COLLISIONS):
            revision = new_revision(sts, data, number, collisions)
            try:
                return await self.client.create(CONTROLLER_REVISIONS, revision, namespace_of(sts)), collisions
            except StatusError as err:
                if not is_already_exists(err):
                    raise
            existing = await self.client.get(CONTROLLER_REVISIONS, name_of(revision), namespace_of(sts))
            ref = controller_ref(existing)
            if ref is not None and ref.get("uid") == uid_of(sts) and util.equal_revision(existing, revision):
                return existing, collisions
            collisions += 1
        raise StatusError(409, "AlreadyExists", f"too many ControllerRevision name collisions for {name_of(sts)}")

    async def truncate_history(self, sts: Obj, revisions: list[Obj], pods: list[Obj], current: Obj,
                               update: Obj) -> None:
        """Delete the oldest revisions no pod uses, keeping at most revisionHistoryLimit of them."""
        live = {name_of(current), name_of(update)} | {util.pod_revision(p) for p in pods}
        history = [r for r in util.sorted_revisions(revisions) if name_of(r) not in live]
        excess = len(history) - util.revision_history_limit(sts)
        for revision in history[:max(excess, 0)]:
            try:
                await self.client.delete(CONTROLLER_REVISIONS, name_of(revision), namespace_of(revision))
            except StatusError as err:
                if not is_not_found(err):
                    raise

    # --- status ----------------------------------------------------------------------------------

    async def update_status(self, sts: Obj, pods: list[Obj], current: str, update: str, collisions: int) -> None:
        status = util.calculate_status(sts, pods, current, update, collisions, self.clock.now())
        if status == (sts.get("status") or {}):
            return
        updated = deep_copy(sts)
        updated["status"] = status
        try:
            await self.client.replace_status(STATEFUL_SETS, updated)
        except StatusError as err:
            if not is_not_found(err):
                raise


def new_revision(sts: Mapping[str, Any], data: Obj, number: int, collisions: int) -> Obj:
    """The ControllerRevision object for ``data`` (labels: the template's + the hash; the set as controller)."""
    digest = util.revision_hash(data, collisions)
    labels = dict((((sts.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[util.HASH_LABEL] = digest
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"{name_of(sts)[:util.MAX_REVISION_PREFIX]}-{digest}", "namespace": namespace_of(sts),
                     "labels": labels,
                     "ownerReferences": [new_controller_ref(sts, api_version=STATEFUL_SETS.api_version,
                                                            kind=STATEFUL_SETS.kind)]},
        "data": deep_copy(data),
        "revision": number,
    }
