"""A DaemonSet's ControllerRevisions: one per template it has had, the current one with the highest number.

``kubectl rollout history/undo ds`` read these, and the current revision's ``controller-revision-hash``
label is what pods are compared against during a rolling update (constructHistory / cleanupHistory of
kube-controller-manager's daemon controller):

- the revisions the DaemonSet owns are claimed by selector (orphans adopted, non-matching released);
- the revision whose data equals the current template is *current*; when it is not the newest any more
  (a rollback to an earlier template) its ``revision`` is bumped above all others; duplicates of it are
  deleted;
- without one, a revision ``<ds>-<hash>`` is created; a name taken by a revision with different data is
  a hash collision: ``status.collisionCount`` is incremented and the reconcile retried (new hash);
- old revisions beyond ``revisionHistoryLimit`` that no live pod still uses are deleted, oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controllers.claim import ControllerRefManager
from controllers.controller import RetryError
from controllers.daemonset.util import (
    DEFAULT_REVISION_HISTORY_LIMIT,
    REVISION_HASH_LABEL,
    revision_data,
    revision_hash,
    revision_matches,
    revision_name,
)
from machinery.cache import NAMESPACE_INDEX
from machinery.client import ApiClient
from machinery.client.resources import CONTROLLER_REVISIONS, DAEMON_SETS
from machinery.errors import StatusError, is_already_exists, is_not_found
from machinery.informer import SharedInformer
from machinery.labels import Selector
from machinery.meta import deep_copy, is_being_deleted, labels_of, name_of, namespace_of, new_controller_ref

Obj = dict[str, Any]


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


class History:
    """Reads and writes the ControllerRevisions of DaemonSets through ``client`` and a revisions informer."""

    def __init__(self, client: ApiClient, revisions: SharedInformer) -> None:
        self.client = client
        self.revisions = revisions

    async def owned(self, ds: Obj, selector: Selector) -> list[Obj]:
        candidates = list(self.revisions.store.by_index(NAMESPACE_INDEX, namespace_of(ds)))
        manager = ControllerRefManager(self.client, ds, selector, CONTROLLER_REVISIONS, DAEMON_SETS)
        return await manager.claim(candidates)

    async def construct(self, ds: Obj, selector: Selector) -> tuple[Obj, list[Obj]]:
        """(current revision, old revisions) of ``ds``, creating or renumbering the current one as needed."""
        history = await self.owned(ds, selector)
        max_number = max((revision_number(r) for r in history), default=0)
        current = [r for r in history if revision_matches(r, ds)]
        old = [r for r in history if not revision_matches(r, ds)]
        if not current:
            return await self._create(ds, max_number + 1), old
        current.sort(key=lambda r: (-revision_number(r), name_of(r)))
        keep, duplicates = current[0], current[1:]
        for dup in duplicates:  # dedupCurHistories: same template twice (rare; a racing writer)
            await self._delete(dup)
        if revision_number(keep) < max_number:
            keep = await self._renumber(keep, max_number + 1)
        elif REVISION_HASH_LABEL not in labels_of(keep):
            keep = await self._renumber(keep, revision_number(keep))
        return keep, old

    async def _create(self, ds: Obj, number: int) -> Obj:
        hash_ = revision_hash(ds)
        template_labels = (((ds.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        revision = {
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": revision_name(ds, hash_), "namespace": namespace_of(ds),
                         "labels": {**template_labels, REVISION_HASH_LABEL: hash_},
                         "ownerReferences": [new_controller_ref(ds, api_version=DAEMON_SETS.api_version,
                                                                kind=DAEMON_SETS.kind)]},
            "data": revision_data(ds), "revision": number,
        }
        try:
            return await self.client.create(CONTROLLER_REVISIONS, revision, namespace_of(ds))
        except StatusError as err:
            if not is_already_exists(err):
                raise
        existing = await self.client.get(CONTROLLER_REVISIONS, revision["metadata"]["name"], namespace_of(ds))
        ours = any(r.get("uid") == (ds.get("metadata") or {}).get("uid")
                   for r in (existing.get("metadata") or {}).get("ownerReferences") or ())
        if ours and revision_matches(existing, ds):
            return existing  # our cache had not seen it yet
        await self._bump_collision_count(ds)
        raise RetryError(f"controllerrevision {revision['metadata']['name']} exists with other data: hash collision")

    async def _bump_collision_count(self, ds: Obj) -> None:
        fresh = await self.client.get(DAEMON_SETS, name_of(ds), namespace_of(ds))
        status = fresh.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.client.replace_status(DAEMON_SETS, fresh)

    async def _renumber(self, revision: Obj, number: int) -> Obj:
        patch = {"revision": number,
                 "metadata": {"labels": {REVISION_HASH_LABEL: _hash_from_name(revision)}}}
        return await self.client.patch(CONTROLLER_REVISIONS, name_of(revision), patch, namespace_of(revision))

    async def _delete(self, revision: Obj) -> None:
        try:
            await self.client.delete(CONTROLLER_REVISIONS, name_of(revision), namespace_of(revision))
        except StatusError as err:
            if not is_not_found(err):
                raise

    async def cleanup(self, ds: Obj, old: list[Obj], live_pods: list[Obj]) -> None:
        """Delete the oldest unused old revisions beyond ``revisionHistoryLimit`` (cleanupHistory)."""
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = DEFAULT_REVISION_HISTORY_LIMIT if limit is None else int(limit)
        if len(old) <= limit:
            return
        in_use = {labels_of(p).get(REVISION_HASH_LABEL) for p in live_pods if not is_being_deleted(p)}
        unused = sorted((r for r in old if labels_of(r).get(REVISION_HASH_LABEL) not in in_use),
                        key=revision_number)
        for revision in unused[:len(old) - limit]:
            await self._delete(deep_copy(revision))


def _hash_from_name(revision: Mapping[str, Any]) -> str:
    return labels_of(revision).get(REVISION_HASH_LABEL) or name_of(revision).rsplit("-", 1)[-1]
