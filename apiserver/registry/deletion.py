"""Deletion semantics of the generic store, as kube-apiserver implements them.

- An object with finalizers, a graceful deletion period (pods) or a strategy that blocks deletion
  (namespaces with ``spec.finalizers``) is only marked: ``deletionTimestamp`` and
  ``deletionGracePeriodSeconds`` are set and the object stays until nothing holds it.
- ``propagationPolicy`` Orphan/Foreground add the ``orphan``/``foregroundDeletion`` finalizers that
  the garbage collector acts on; Background (or another policy) removes the other one.
- Preconditions (uid, resourceVersion) are checked against the stored object.
- Service reservations held by a deleted object are given back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apiserver.registry.options import DeleteOptions
from apiserver.storage import errors as storage_errors
from apiserver.storage.store import Preconditions
from machinery import errors as api
from machinery.meta import format_rfc3339

Obj = dict[str, Any]

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


class DeletionMixin:
    """The delete half of :class:`apiserver.registry.generic.ResourceStore`."""

    async def delete(self, namespace: str | None, name: str, options: DeleteOptions) -> tuple[Obj, bool]:
        """Delete, or mark for deletion. Returns the object and whether it is gone already."""
        key = self.key(namespace, name)
        policy = options.propagation_policy
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise api.invalid("DeleteOptions", "", [api.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"])])
        if options.grace_period_seconds is not None and options.grace_period_seconds < 0:
            options.grace_period_seconds = 1
        try:
            current = await self.storage.get(key)
        except storage_errors.StorageError as err:
            raise self._error(err, name) from None
        if options.preconditions:
            try:
                options.preconditions.check(key, current)
            except storage_errors.StorageError as err:
                raise self._error(err, name) from None
        grace = self._grace_period(current, options)
        finalizers = _finalizers_for(current, policy)
        if grace == 0 and not finalizers and not self.strategy.blocks_deletion(current):
            if options.dry_run:
                return current, True
            return await self._delete_now(key, name, options.preconditions), True
        if options.dry_run:
            return current, False
        return await self._mark_deleted(namespace, name, grace, policy, options.preconditions)

    def _grace_period(self, obj: Obj, options: DeleteOptions) -> int:
        hook = getattr(self.strategy, "deletion_grace_period", None)
        if hook is None:
            return 0
        return hook(obj, options.grace_period_seconds)

    async def _delete_now(self, key: str, name: str, preconditions: Preconditions | None) -> Obj:
        try:
            deleted = await self.storage.delete(key, preconditions=preconditions)
        except storage_errors.StorageError as err:
            raise self._error(err, name) from None
        if self.allocator is not None:
            await self._release_quietly(self.allocator.keys_of(deleted))
        return deleted

    async def _mark_deleted(
        self, namespace: str | None, name: str, grace: int, policy: str | None, preconditions: Preconditions | None,
    ) -> tuple[Obj, bool]:
        def mark(current: Obj | None) -> Obj:
            assert current is not None
            meta = current["metadata"]
            if preconditions:
                preconditions.check(self.key(namespace, name), current)
            finalizers = _finalizers_for(current, policy)
            if finalizers:
                meta["finalizers"] = finalizers
            else:
                meta.pop("finalizers", None)
            existing_grace = meta.get("deletionGracePeriodSeconds")
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = format_rfc3339(datetime.now(UTC) + timedelta(seconds=grace))
                meta["deletionGracePeriodSeconds"] = grace
                self.strategy.on_delete_mark(current)
            elif existing_grace is not None and grace < existing_grace:
                meta["deletionTimestamp"] = format_rfc3339(datetime.now(UTC) + timedelta(seconds=grace))
                meta["deletionGracePeriodSeconds"] = grace
            return current

        try:
            stored = await self.storage.guaranteed_update(self.key(namespace, name), mark)
        except storage_errors.StorageError as err:
            raise self._error(err, name) from None
        if self._should_delete_now(stored):
            return await self._finish_deletion(namespace, name, stored), True
        return stored, False

    def _should_delete_now(self, obj: Obj) -> bool:
        """Marked for deletion, nothing left holding it, and no grace period still running."""
        meta = obj.get("metadata") or {}
        return (bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")
                and not meta.get("deletionGracePeriodSeconds") and not self.strategy.blocks_deletion(obj))

    async def _finish_deletion(self, namespace: str | None, name: str, obj: Obj) -> Obj:
        """An object marked for deletion with no finalizers left and no grace period goes away."""
        rv = obj["metadata"]["resourceVersion"]
        try:
            deleted = await self.storage.delete(self.key(namespace, name),
                                                preconditions=Preconditions(resource_version=rv))
        except (storage_errors.NotFound, storage_errors.Conflict):
            return obj
        except storage_errors.StorageError as err:
            raise self._error(err, name) from None
        if self.allocator is not None:
            await self._release_quietly(self.allocator.keys_of(deleted))
        return deleted


def _policy_finalizers(policy: str | None) -> list[str]:
    if policy == "Orphan":
        return [ORPHAN_FINALIZER]
    if policy == "Foreground":
        return [FOREGROUND_FINALIZER]
    return []


def _finalizers_for(obj: Obj, policy: str | None) -> list[str]:
    """The object's finalizers once this delete's propagation policy is applied: the policy's own
    garbage-collection finalizer is added, the other one removed (no policy keeps both as they are)."""
    existing = list((obj.get("metadata") or {}).get("finalizers") or [])
    wanted = _policy_finalizers(policy)
    if policy:
        existing = [f for f in existing if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER) or f in wanted]
    return existing + [f for f in wanted if f not in existing]
