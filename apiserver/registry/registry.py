"""The set of served resources: a :class:`ResourceStore` and a watch cache per resource.

Built once at start-up from :data:`apiserver.resources.BUILTIN_RESOURCES`. The HTTP layer looks
resources up here by group/version/plural and never touches storage directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from apiserver.registry.allocator import ServiceAllocator
from apiserver.registry.builtin import strategy_for
from apiserver.registry.core.priority import PriorityAdmission
from apiserver.registry.generic import NamespaceLookup, ResourceStore
from apiserver.resources import BUILTIN_RESOURCES, ResourceInfo
from apiserver.storage.cacher import WatchCache
from apiserver.storage.store import Store

log = logging.getLogger(__name__)


class Registry:
    def __init__(
        self,
        storage: Store,
        resources: Iterable[ResourceInfo] = BUILTIN_RESOURCES,
        *,
        watch_cache: bool = True,
        cache_capacity: int = 4096,
        bookmark_interval: float = 60.0,
    ) -> None:
        self.storage = storage
        self.watch_cache = watch_cache
        self.cache_capacity = cache_capacity
        self.bookmark_interval = bookmark_interval
        self._by_gvr: dict[tuple[str, str, str], ResourceStore] = {}
        #: set when the server shuts down: watches that do not come from a cache end too
        self.closing = asyncio.Event()
        self._resources: list[ResourceInfo] = []
        ns_info = next(r for r in BUILTIN_RESOURCES if r.resource == "namespaces" and r.group == "")
        self._ns_cache = self._make_cache(ns_info)
        self.namespaces = NamespaceLookup(storage, self._ns_cache, ns_info.storage_prefix)
        for info in resources:
            self._add(info)
        pods, priority_classes = self.get("", "v1", "pods"), self.get("scheduling.k8s.io", "v1", "priorityclasses")
        if pods is not None and priority_classes is not None:
            pods.admission = PriorityAdmission(priority_classes)

    def _make_cache(self, info: ResourceInfo) -> WatchCache | None:
        if not self.watch_cache:
            return None
        return WatchCache(
            self.storage, info.storage_prefix, namespaced=info.namespaced,
            capacity=self.cache_capacity, bookmark_interval=self.bookmark_interval,
        )

    def _add(self, info: ResourceInfo) -> None:
        """Serve ``info``; its cache is filled by :meth:`start`."""
        is_ns = info.resource == "namespaces" and info.group == ""
        cache = self._ns_cache if is_ns else self._make_cache(info)
        store = ResourceStore(
            info, strategy_for(info), self.storage, cache,
            None if not info.namespaced else self.namespaces,
        )
        if info.group == "" and info.resource == "services":
            store.allocator = ServiceAllocator(self.storage)
        self._by_gvr[(info.group, info.version, info.resource)] = store
        self._resources.append(info)

    def get(self, group: str, version: str, resource: str) -> ResourceStore | None:
        return self._by_gvr.get((group, version, resource))

    @property
    def resources(self) -> list[ResourceInfo]:
        return list(self._resources)

    def stores(self) -> list[ResourceStore]:
        return list(self._by_gvr.values())

    async def start(self) -> None:
        caches = [s.cache for s in self._by_gvr.values() if s.cache is not None]
        await asyncio.gather(*(c.start() for c in caches))

    async def stop(self) -> None:
        caches = [s.cache for s in self._by_gvr.values() if s.cache is not None]
        await asyncio.gather(*(c.stop() for c in caches), return_exceptions=True)

    def close_watches(self) -> None:
        """End every open watch (shutdown): clients see a clean end of stream and re-watch elsewhere."""
        self.closing.set()
        for store in self._by_gvr.values():
            if store.cache is not None:
                store.cache.close_watchers()

    def send_bookmarks(self) -> None:
        for store in self._by_gvr.values():
            if store.cache is not None:
                store.cache.send_bookmarks()
