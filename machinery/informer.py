"""Shared informers: one list+watch per resource per process, fanned out to every interested controller.

A :class:`SharedInformer` keeps an :class:`~machinery.cache.Indexer` current from
:func:`~machinery.client.watch.list_and_watch` and calls its handlers with what changed: ``on_add(obj)``,
``on_update(old, new)``, ``on_delete(obj)``. After a relist (the first list, or after a 410) it diffs
the snapshot against the store, so handlers see exactly the adds, updates and deletes they missed.
A periodic resync (when configured) calls ``on_update(obj, obj)`` for every object, so level-driven
controllers revisit everything now and then. Handlers run on the event loop and must be quick: they
only enqueue keys.

:class:`SharedInformerFactory` hands out one informer per (resource, namespace, selectors), starts
them, waits for their caches to sync and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from machinery.cache import Indexer, IndexFunc
from machinery.client.resources import Resource
from machinery.client.rest import ApiClient
from machinery.client.watch import Relisted, list_and_watch
from machinery.clock import REAL_CLOCK, Clock
from machinery.meta import key_of, resource_version_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class EventHandler:
    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class SharedInformer:
    def __init__(self, client: ApiClient, resource: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float = 0.0, indexers: dict[str, IndexFunc] | None = None,
                 clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.clock = clock
        self.store = Indexer(indexers)
        self.last_sync_resource_version = ""
        self.relists = 0
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()

    # --- the public surface --------------------------------------------------------------------------

    def add_event_handler(self, on_add: Callable[[Obj], None] | None = None,
                          on_update: Callable[[Obj, Obj], None] | None = None,
                          on_delete: Callable[[Obj], None] | None = None) -> EventHandler:
        """Register handlers; a handler added after the cache synced first gets ``on_add`` for every object."""
        handler = EventHandler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self.has_synced() and on_add is not None:
            for obj in self.store.list():
                _call(on_add, obj)
        return handler

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        """Keep the store current until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            if self.resync_period > 0:
                tasks.create_task(self._resync_loop())
            await self._reflect()

    # --- internals ------------------------------------------------------------------------------------

    async def _reflect(self) -> None:
        stream = list_and_watch(self.client, self.resource, self.namespace,
                                label_selector=self.label_selector, field_selector=self.field_selector)
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, Relisted):
                    self._replace(item.items)
                    self.last_sync_resource_version = item.resource_version
                    self.relists += 1
                    self._synced.set()
                else:
                    self._apply(item)

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        rv = resource_version_of(obj)
        if rv:
            self.last_sync_resource_version = rv
        if kind in ("ADDED", "MODIFIED"):
            old = self.store.upsert(obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        elif kind == "DELETED":
            self.store.delete(key_of(obj))
            self._notify_delete(obj)

    def _replace(self, items: Iterable[Obj]) -> None:
        """Swap in a snapshot and tell handlers what changed since the store's last state."""
        fresh = {key_of(obj): obj for obj in items}
        previous = {key: self.store.get(key) for key in self.store}
        self.store.replace(fresh.values())
        for key, old in previous.items():
            if key not in fresh and old is not None:
                self._notify_delete(old)
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                self._notify_add(obj)
            elif resource_version_of(old) != resource_version_of(obj):
                self._notify_update(old, obj)

    async def _resync_loop(self) -> None:
        await self._synced.wait()
        while True:
            await self.clock.sleep(self.resync_period)
            self.resync()

    def resync(self) -> None:
        """Call ``on_update(obj, obj)`` for every cached object."""
        for obj in self.store.list():
            self._notify_update(obj, obj)

    def _notify_add(self, obj: Obj) -> None:
        for handler in self._handlers:
            if handler.on_add is not None:
                _call(handler.on_add, obj)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for handler in self._handlers:
            if handler.on_update is not None:
                _call(handler.on_update, old, new)

    def _notify_delete(self, obj: Obj) -> None:
        for handler in self._handlers:
            if handler.on_delete is not None:
                _call(handler.on_delete, obj)


def _call(func: Callable[..., None], *args: Obj) -> None:
    """Handlers must not break the informer: a failing one is logged and the others still run."""
    try:
        func(*args)
    except Exception:
        log.exception("informer event handler %r failed", func)


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors) per process; starts, syncs and stops them."""

    def __init__(self, client: ApiClient, *, resync_period: float = 0.0, clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.resync_period = resync_period
        self.clock = clock
        self._informers: dict[tuple, SharedInformer] = {}
        self._tasks: dict[tuple, asyncio.Task[None]] = {}

    def informer(self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None, resync_period: float | None = None) -> SharedInformer:
        key = (resource, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = SharedInformer(
                self.client, resource, namespace=namespace, label_selector=label_selector,
                field_selector=field_selector, clock=self.clock,
                resync_period=self.resync_period if resync_period is None else resync_period)
            self._informers[key] = informer
        return informer

    def informers(self) -> list[SharedInformer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer not yet running (call again after asking for more informers)."""
        for key, informer in self._informers.items():
            if key not in self._tasks:
                self._tasks[key] = asyncio.create_task(informer.run(), name=f"informer {informer.resource}")
                self._tasks[key].add_done_callback(_report_crash)

    async def wait_for_sync(self, informers: Iterable[SharedInformer] | None = None) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in (informers or self.informers())))

    async def stop(self, resource: Resource | None = None) -> None:
        """Stop one resource's informers (or all of them) and wait until they have stopped."""
        keys = [k for k in self._tasks if resource is None or k[0] == resource]
        tasks = [self._tasks.pop(k) for k in keys]
        for key in keys:
            if resource is not None:
                self._informers.pop(key, None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception())
