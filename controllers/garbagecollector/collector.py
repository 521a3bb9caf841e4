"""The garbage collector controller: deletes objects whose owners are gone, honours foreground and orphan deletion.

kube-controller-manager's ``garbagecollector`` (v1.35 semantics). Informers on every deletable
resource feed the :class:`~controllers.garbagecollector.graph.DependencyGraph`; two queues of uids
are worked on:

* ``attempt to delete`` (:meth:`GarbageCollector.reconcile`): read the object live; if it is gone,
  tell the graph (a "virtual delete", which queues its dependents). An object whose owners are all
  absent (404, or the name now has another uid) is deleted — Background, or the policy its own
  ``orphan``/``foregroundDeletion`` finalizer asks for — with uid and resourceVersion preconditions.
  An object with some owners left loses only its dangling references (and those to owners deleting
  in the foreground). An object whose only remaining owners are deleting in the foreground is
  deleted in the Foreground itself when it has dependents of its own (so the owner waits for the
  whole chain). An object being deleted in the foreground loses its ``foregroundDeletion``
  finalizer once no dependent blocks it (``blockOwnerDeletion: true``); until then its blocking
  dependents are queued.
* ``attempt to orphan`` (:meth:`GarbageCollector.attempt_to_orphan`): an object deleted with the
  ``orphan`` finalizer has its reference removed from every dependent, then loses the finalizer.

Patches are JSON merge patches carrying the object's uid and resourceVersion as preconditions
(Kubernetes tries a strategic merge patch first and falls back to this one); a conflict re-reads
the object and tries again.

Resources are discovered every :attr:`GarbageCollector.DISCOVERY_PERIOD` seconds, so custom resources
are collected once they exist; workers pause while new informers sync, as in Kubernetes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from controllers.controller import Controller, ControllerContext
from controllers.garbagecollector.graph import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    AbsentOwnerCache,
    DependencyGraph,
    Node,
    ObjectReference,
    OwnerRef,
)
from controllers.garbagecollector.monitors import (
    BUILTIN_RESOURCES,
    DEFAULT_IGNORED_RESOURCES,
    Monitors,
    RestMapper,
    UnknownKind,
    deletable_resources,
    discover,
)
from machinery import errors
from machinery.client.resources import Resource
from machinery.meta import resource_version_of, uid_of
from machinery.ratelimit import default_controller_rate_limiter
from machinery.workqueue import QueueShutDown, WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONFLICT_RETRIES = 5
SYNC_LOG_INTERVAL = 10.0


class NotYetObserved(Exception):
    """A virtual node's object exists but no informer has shown it yet: look again with backoff."""


class NamespacedOwnerOfClusterScoped(Exception):
    """A cluster-scoped object names a namespaced owner: the reference can never resolve."""


class _Outcome(enum.Enum):
    DONE = "done"
    ABSENT = "absent"  # the item itself is gone; the graph was told


class GarbageCollector(Controller):
    NAME = "garbagecollector"
    WORKERS = 20  # --concurrent-gc-syncs
    DISCOVERY_PERIOD = 30.0

    def __init__(self, ctx: ControllerContext, *, discovery_period: float | None = None,
                 ignored_resources: Iterable[tuple[str, str]] = DEFAULT_IGNORED_RESOURCES) -> None:
        super().__init__(ctx)
        self.discovery_period = self.DISCOVERY_PERIOD if discovery_period is None else discovery_period
        self.ignored_resources = frozenset(ignored_resources)
        self.orphan_queue: WorkQueue = WorkQueue(f"{self.NAME}_attempt_to_orphan", clock=ctx.clock,
                                                 rate_limiter=default_controller_rate_limiter(ctx.clock))
        self.absent_owners = AbsentOwnerCache()
        self.graph = DependencyGraph(self.queue, self.orphan_queue, self.absent_owners)
        self.mapper = RestMapper(BUILTIN_RESOURCES)
        self.monitors = Monitors(ctx.informers, self.graph)
        self._ready = asyncio.Event()  # set while the graph is complete enough for workers to act
        self._synced = False  # the first discovery's monitors have synced (stays true across rediscoveries)

    def synced(self) -> bool:
        return self._synced

    # --- running ----------------------------------------------------------------------------------------

    async def run(self, workers: int | None = None) -> None:
        """Discover, start monitors, wait for them, then work both queues until cancelled."""
        workers = workers or self.WORKERS
        try:
            async with asyncio.TaskGroup() as tasks:
                await self._initial_sync()
                log.info("garbage collector: all resource monitors have synced, starting %d workers", workers)
                self._synced = True
                self._ready.set()
                tasks.create_task(self._rediscover_loop(), name="garbagecollector discovery")
                for _ in range(workers):
                    tasks.create_task(self._work(self.queue, self.process))
                    tasks.create_task(self._work(self.orphan_queue, self.process_orphan))
        finally:
            self._synced = False
            self._ready.clear()
            self.queue.shutdown()
            self.orphan_queue.shutdown()
            await self.monitors.stop()

    async def _initial_sync(self) -> None:
        backoff = 1.0
        while True:
            try:
                resources = await discover(self.client)
                break
            except Exception as err:  # API errors and transport errors alike: the server may not be up yet
                log.warning("garbage collector: discovery failed: %s; retrying in %.0fs", err, backoff)
                await self.clock.sleep(backoff)
                backoff = min(30.0, backoff * 2)
        self.mapper = RestMapper(resources)
        await self.monitors.sync(deletable_resources(resources, self.ignored_resources))
        while True:
            try:
                await asyncio.wait_for(self.monitors.wait_for_sync(), SYNC_LOG_INTERVAL)
                return
            except TimeoutError:
                log.info("garbage collector: waiting for monitors to sync: %s",
                         ", ".join(r.qualified for r in self.monitors.unsynced()))

    async def _rediscover_loop(self) -> None:
        """Follow resources appearing (CRDs) and disappearing; pause workers while new monitors sync."""
        while True:
            await self.clock.sleep(self.discovery_period)
            try:
                resources = await discover(self.client)
            except Exception as err:
                log.warning("garbage collector: discovery failed: %s; keeping the monitored resources", err)
                continue
            self.mapper = RestMapper(resources)
            wanted = deletable_resources(resources, self.ignored_resources)
            if wanted == self.monitors.resources():
                continue
            self._ready.clear()
            try:
                added, removed = await self.monitors.sync(wanted)
                log.info("garbage collector: monitoring %d resources (added %s; removed %s)", len(wanted),
                         ", ".join(r.qualified for r in added) or "none",
                         ", ".join(r.qualified for r in removed) or "none")
                try:
                    await asyncio.wait_for(self.monitors.wait_for_sync(), self.discovery_period)
                except TimeoutError:
                    log.warning("garbage collector: timed out waiting for monitors to sync: %s",
                                ", ".join(r.qualified for r in self.monitors.unsynced()))
            finally:
                self._ready.set()

    async def _work(self, queue: WorkQueue, handle: Callable[[str], Awaitable[None]]) -> None:
        while True:
            try:
                uid = await queue.get()
            except QueueShutDown:
                return
            try:
                await self._ready.wait()
                await handle(uid)
            finally:
                queue.done(uid)

    async def process(self, uid: str) -> None:
        await self._handle(self.queue, uid, self.reconcile)

    async def process_orphan(self, uid: str) -> None:
        await self._handle(self.orphan_queue, uid, self.attempt_to_orphan)

    async def _handle(self, queue: WorkQueue, uid: str, action: Callable[[str], Awaitable[Any]]) -> None:
        """Run ``action``; forget the uid on success, retry it with backoff otherwise."""
        try:
            await action(uid)
        except asyncio.CancelledError:
            raise
        except NotYetObserved:
            queue.add_rate_limited(uid)
            return
        except Exception as exc:
            retries = queue.num_requeues(uid)
            level = logging.INFO if retries < 5 else logging.WARNING
            log.log(level, "garbage collector: %s %s: %s (retry %d)", queue.name, uid, str(exc) or type(exc).__name__,
                    retries + 1, exc_info=not isinstance(exc, errors.StatusError | UnknownKind))
            queue.add_rate_limited(uid)
            return
        queue.forget(uid)

    # --- attempt to delete --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """Look at the graph node with uid ``key``. Raises :class:`NotYetObserved` to be polled again."""
        node = self.graph.node(key)
        if node is None:
            return None  # gone from the graph meanwhile
        try:
            outcome = await self._attempt_to_delete_item(node)
        except NamespacedOwnerOfClusterScoped as err:
            log.warning("garbage collector: %s: %s", node.identity, err)
            return None
        if outcome is _Outcome.DONE and node.virtual and self.graph.node(key) is node:
            raise NotYetObserved(str(node.identity))
        return None

    async def _attempt_to_delete_item(self, node: Node) -> _Outcome:
        if node.being_deleted and not node.deleting_dependents:
            return _Outcome.DONE  # deletion is under way; its dependents are handled once it is gone
        latest = await self._get_object(node.identity)
        if latest is None or uid_of(latest) != node.uid:
            self.graph.virtual_delete(node.identity)
            return _Outcome.ABSENT
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return _Outcome.DONE
        refs = list((latest.get("metadata") or {}).get("ownerReferences") or ())
        if not refs:
            return _Outcome.DONE
        solid, dangling, waiting = await self._classify_references(node, refs)
        if solid:
            if dangling or waiting:
                gone = {ref.get("uid") for ref in dangling + waiting}
                log.info("garbage collector: removing references to absent or deleting owners %s from %s",
                         ", ".join(sorted(str(u) for u in gone)), node.identity)
                await self._patch_owner_references(node.identity, lambda rs: [r for r in rs if r.get("uid")
                                                                              not in gone], latest)
        elif waiting and node.dependents:
            if any(dep.deleting_dependents for dep in node.dependents):
                # a cycle of foreground deletions would wait forever: stop blocking our owners
                await self._patch_owner_references(node.identity, _unblocked, latest)
            log.info("garbage collector: deleting %s in the foreground since its owners are deleting in the "
                     "foreground and it has dependents", node.identity)
            await self._delete_object(node.identity, latest, "Foreground")
        else:
            policy = _policy_from_finalizers(latest)
            why = "are absent or deleting in the foreground" if waiting else "are absent"
            log.info("garbage collector: deleting %s since all its owners %s (propagationPolicy=%s)",
                     node.identity, why, policy)
            await self._delete_object(node.identity, latest, policy)
        return _Outcome.DONE

    async def _classify_references(self, node: Node, refs: list[OwnerRef]
                                   ) -> tuple[list[OwnerRef], list[OwnerRef], list[OwnerRef]]:
        """(solid, dangling, waiting for dependents' deletion) owner references of ``node``."""
        solid: list[OwnerRef] = []
        dangling: list[OwnerRef] = []
        waiting: list[OwnerRef] = []
        for ref in refs:
            owner = await self._owner_if_present(ref, node)
            if owner is None:
                dangling.append(ref)
            elif _being_deleted_with(owner, FOREGROUND_FINALIZER):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _owner_if_present(self, ref: OwnerRef, item: Node) -> Obj | None:
        """The owner ``ref`` names, or None when it is absent (404, or its name now has another uid)."""
        cluster_key = ObjectReference.of_owner(ref)
        namespaced_key = ObjectReference.of_owner(ref, item.identity.namespace)
        if cluster_key in self.absent_owners or namespaced_key in self.absent_owners:
            return None
        resource = self.mapper.resource_for(cluster_key.api_version, cluster_key.kind)
        if resource.namespaced and not item.identity.namespace:
            raise NamespacedOwnerOfClusterScoped(f"cluster-scoped object names namespaced owner {cluster_key}")
        key = namespaced_key if resource.namespaced else cluster_key
        try:
            owner = await self.client.get(resource, key.name, key.namespace or None)
        except errors.StatusError as err:
            if not errors.is_not_found(err):
                raise
            owner = None
        if owner is None or uid_of(owner) != key.uid:
            self.absent_owners.add(key)
            return None
        return owner

    async def _process_deleting_dependents(self, node: Node) -> None:
        """Foreground deletion: finish once nothing blocks, else make sure the blockers are being deleted."""
        blocking = node.blocking_dependents()
        if not blocking:
            log.info("garbage collector: no dependents block %s any more; removing its %s finalizer",
                     node.identity, FOREGROUND_FINALIZER)
            await self._remove_finalizer(node.identity, FOREGROUND_FINALIZER)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.queue.add(dep.uid)

    # --- attempt to orphan ----------------------------------------------------------------------------------

    async def attempt_to_orphan(self, uid: str) -> None:
        """Remove the reference to owner ``uid`` from all its dependents, then its ``orphan`` finalizer."""
        owner = self.graph.node(uid)
        if owner is None:
            return
        dependents = list(owner.dependents)
        results = await asyncio.gather(*(self._orphan(dep.identity, uid) for dep in dependents),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        if dependents:
            log.info("garbage collector: orphaned %d dependents of %s", len(dependents), owner.identity)
        await self._remove_finalizer(owner.identity, ORPHAN_FINALIZER)

    async def _orphan(self, dependent: ObjectReference, owner_uid: str) -> None:
        await self._patch_owner_references(dependent, lambda refs: [r for r in refs if r.get("uid") != owner_uid])

    # --- API operations ---------------------------------------------------------------------------------------

    def _resource(self, ref: ObjectReference) -> tuple[Resource, str | None]:
        """Where ``ref`` lives. A namespaced kind without a namespace can only come from a cluster-scoped
        object naming a namespaced owner: that reference can never be resolved (nor retried)."""
        resource = self.mapper.resource_of(ref)
        if not resource.namespaced:
            return resource, None
        if not ref.namespace:
            raise NamespacedOwnerOfClusterScoped(f"{ref} is namespaced but referenced by a cluster-scoped object")
        return resource, ref.namespace

    async def _get_object(self, ref: ObjectReference) -> Obj | None:
        resource, namespace = self._resource(ref)
        try:
            return await self.client.get(resource, ref.name, namespace)
        except errors.StatusError as err:
            if errors.is_not_found(err):
                return None
            raise

    async def _delete_object(self, ref: ObjectReference, latest: Obj, policy: str) -> None:
        """DELETE with uid+resourceVersion preconditions; when only an unrelated change made the
        resourceVersion stale (same owners), retry with the uid alone so busy objects still go."""
        resource, namespace = self._resource(ref)
        preconditions = {"uid": ref.uid, "resourceVersion": resource_version_of(latest)}
        try:
            await self.client.delete(resource, ref.name, namespace, propagation_policy=policy,
                                     preconditions=preconditions)
            return
        except errors.StatusError as err:
            if errors.is_not_found(err):
                return
            if not errors.is_conflict(err):
                raise
            conflict = err
        live = await self._get_object(ref)
        if live is None:
            return
        if uid_of(live) != ref.uid or _owner_refs(live) != _owner_refs(latest):
            raise conflict  # its owners changed: look at it again
        try:
            await self.client.delete(resource, ref.name, namespace, propagation_policy=policy,
                                     preconditions={"uid": ref.uid})
        except errors.StatusError as err:
            if not errors.is_not_found(err):
                raise

    async def _patch_owner_references(self, ref: ObjectReference,
                                      change: Callable[[list[OwnerRef]], list[OwnerRef]],
                                      latest: Obj | None = None) -> None:
        """Set the object's ownerReferences to ``change(current)`` (no-op if unchanged or gone)."""
        def owner_references(current: Obj) -> dict[str, Any] | None:
            refs = _owner_refs(current)
            wanted = change(refs)
            return None if wanted == refs else {"ownerReferences": wanted or None}

        await self._patch_metadata(ref, owner_references, "updating ownerReferences", latest)

    async def _remove_finalizer(self, ref: ObjectReference, finalizer: str) -> None:
        """Remove ``finalizer`` from the object (no-op if absent or gone)."""
        def without_finalizer(current: Obj) -> dict[str, Any] | None:
            finalizers = list((current.get("metadata") or {}).get("finalizers") or ())
            if finalizer not in finalizers:
                return None
            return {"finalizers": [f for f in finalizers if f != finalizer] or None}

        await self._patch_metadata(ref, without_finalizer, f"removing finalizer {finalizer}")

    async def _patch_metadata(self, ref: ObjectReference, change: Callable[[Obj], dict[str, Any] | None],
                              what: str, latest: Obj | None = None) -> None:
        """Merge-patch ``change(current)`` into the object's metadata with uid and resourceVersion
        preconditions, re-reading and retrying on conflicts; no-op when ``change`` returns None or the
        object is gone (or replaced by another with the same name)."""
        resource, namespace = self._resource(ref)
        for _ in range(CONFLICT_RETRIES):
            current = latest if latest is not None else await self._get_object(ref)
            latest = None
            if current is None or uid_of(current) != ref.uid:
                return
            changed = change(current)
            if changed is None:
                return
            patch = {"metadata": {"uid": ref.uid, "resourceVersion": resource_version_of(current), **changed}}
            try:
                await self.client.patch(resource, ref.name, patch, namespace)
                return
            except errors.StatusError as err:
                if errors.is_not_found(err):
                    return
                if not errors.is_conflict(err):
                    raise
        raise errors.conflict(resource.plural, ref.name, f"too many conflicts {what}", resource.group)


def _owner_refs(obj: Mapping[str, Any]) -> list[OwnerRef]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or ())


def _being_deleted_with(obj: Mapping[str, Any], finalizer: str) -> bool:
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or ())


def _policy_from_finalizers(obj: Mapping[str, Any]) -> str:
    """Honour a deletion policy the object's own finalizers already ask for; Background otherwise."""
    finalizers = (obj.get("metadata") or {}).get("finalizers") or ()
    if ORPHAN_FINALIZER in finalizers:
        return "Orphan"
    if FOREGROUND_FINALIZER in finalizers:
        return "Foreground"
    return "Background"


def _unblocked(refs: list[OwnerRef]) -> list[OwnerRef]:
    return [{**ref, "blockOwnerDeletion": False} if ref.get("blockOwnerDeletion") is True else ref for ref in refs]
