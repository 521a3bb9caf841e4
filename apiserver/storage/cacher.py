"""The watch cache: one etcd watch per resource feeding every client watch and cached list.

A :class:`WatchCache` holds the current objects of one resource and a ring buffer of its recent
events, fed by a single etcd watch. Client watches are served from it:

- a watch from resourceVersion "0" (or unset) first gets a synthetic ADDED per current object;
- a watch from a specific resourceVersion gets exactly the events after it, from the buffer, or,
  when that revision is older than the buffer but not yet compacted, from a direct etcd watch;
  a compacted revision gives Expired (410);
- selectors are applied per watcher: an object that starts matching is sent as ADDED, one that
  stops matching as DELETED, as kube-apiserver does;
- each watcher has a bounded queue: a watcher that falls too far behind is closed (the client
  re-watches or relists) and never slows the others;
- every event is serialised at most once, however many watchers receive it.

Everything that touches the cache runs on the event loop without awaiting in between, so a
snapshot plus registration is atomic with respect to incoming events.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from apiserver.storage import errors
from apiserver.storage.store import ListResult, Store, WatchEvent, encode_continue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

DEFAULT_CAPACITY = 4096
DEFAULT_QUEUE_LIMIT = 2048
FRESHNESS_TIMEOUT = 3.0


class Delivery:
    """One event as sent to watchers; the JSON of its object is computed once and shared."""

    __slots__ = ("_json", "obj", "revision", "type")

    def __init__(self, type: str, obj: Obj, revision: int) -> None:
        self.type = type
        self.obj = obj
        self.revision = revision
        self._json: bytes | None = None

    def object_json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.obj)
        return self._json


@dataclass(slots=True)
class CacheEvent:
    type: str
    key: str
    namespace: str | None
    obj: Obj  # the new state, or the last state (at the deletion revision) for DELETED
    source: WatchEvent  # decodes the previous state on demand
    revision: int
    delivery: Delivery

    @property
    def prev(self) -> Obj | None:
        return self.source.prev

    def prev_at_revision(self) -> Obj:
        """The previous state stamped with this event's revision (sent when an object leaves a selector)."""
        assert self.prev is not None
        meta = dict(self.prev.get("metadata") or {})
        meta["resourceVersion"] = str(self.revision)
        return {**self.prev, "metadata": meta}


class CacheWatcher:
    """A client watch served from the cache. Iterate it to receive :class:`Delivery` items.

    ``BOOKMARK`` deliveries carry a None object; the server renders them for the resource's kind.
    """

    def __init__(
        self,
        cache: WatchCache,
        namespace: str | None,
        predicate: Predicate | None,
        *,
        allow_bookmarks: bool,
        queue_limit: int,
    ) -> None:
        self.cache = cache
        self.namespace = namespace
        self.predicate = predicate
        self.allow_bookmarks = allow_bookmarks
        self.queue_limit = queue_limit
        self.min_revision = 0  # deliveries at or below this revision were already seen by the client
        self.last_bookmark = time.monotonic()
        self.closed = False
        self.overflowed = False
        self._items: collections.deque[Delivery] = collections.deque()
        self._wake = asyncio.Event()

    def matches(self, obj: Obj) -> bool:
        return self.predicate is None or self.predicate(obj)

    def offer(self, item: Delivery) -> None:
        if self.closed or item.revision <= self.min_revision:
            return
        if len(self._items) >= self.queue_limit:
            log.warning("closing a watcher of %s that fell %d events behind", self.cache.prefix, self.queue_limit)
            self.overflowed = True
            self.close()
            return
        self._items.append(item)
        self._wake.set()

    def preload(self, items: list[Delivery]) -> None:
        """Initial events; may exceed the queue limit (bounded by the cache size)."""
        self._items.extend(items)
        if items:
            self._wake.set()

    def bookmark(self, revision: int) -> None:
        self.last_bookmark = time.monotonic()
        self.offer(Delivery("BOOKMARK", None, revision))  # type: ignore[arg-type]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake.set()
            self.cache._remove(self)

    async def next_batch(self) -> list[Delivery]:
        """Everything queued so far (waiting for at least one item); empty once closed."""
        while not self._items:
            if self.closed:
                return []
            self._wake.clear()
            await self._wake.wait()
        items = list(self._items)
        self._items.clear()
        return items

    def __aiter__(self) -> CacheWatcher:
        return self

    async def __anext__(self) -> Delivery:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()


class WatchCache:
    """The cache of one resource (all namespaces), kept current by one etcd watch."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        *,
        namespaced: bool,
        capacity: int = DEFAULT_CAPACITY,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        bookmark_interval: float = 60.0,
    ) -> None:
        self.store = store
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.namespaced = namespaced
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.bookmark_interval = bookmark_interval
        self.revision = 0  # everything up to this etcd revision is reflected in the cache
        self.oldest = 0  # watches from a revision >= oldest can be served from the buffer
        self._objects: dict[str, Obj] = {}
        self._sorted_keys: list[str] | None = None
        self._events: collections.deque[CacheEvent] = collections.deque(maxlen=capacity)
        self._watchers_all: set[CacheWatcher] = set()
        self._watchers_by_ns: dict[str, set[CacheWatcher]] = collections.defaultdict(set)
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._ready = asyncio.Event()
        self.closing = False
        self._task: asyncio.Task | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Fill the cache and start following etcd. Returns once the cache is ready."""
        await self._relist()
        self._task = asyncio.create_task(self._run(), name=f"watch-cache {self.prefix}")

    async def stop(self) -> None:
        for watcher in list(self._watchers_all) + [w for ws in self._watchers_by_ns.values() for w in ws]:
            watcher.close()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def __len__(self) -> int:
        return len(self._objects)

    async def _relist(self) -> None:
        objects: dict[str, Obj] = {}
        token, revision = "", 0
        while True:
            page = await self.store.list(self.prefix, revision=revision, limit=10000, continue_token=token)
            revision = page.revision
            for obj in page.items:
                objects[self._key_of(obj)] = obj
            if not page.continue_token:
                break
            token = page.continue_token
        self._objects = objects
        self._sorted_keys = None
        self._events.clear()
        self.revision = revision
        self.oldest = revision
        self._ready.set()
        self._wake_waiters()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with self.store.watch(self.prefix, revision=self.revision) as stream:
                    backoff = 0.1
                    async for event in stream:
                        self._apply(event)
            except asyncio.CancelledError:
                raise
            except errors.Expired:
                log.warning("watch cache %s: revision %d compacted; relisting", self.prefix, self.revision)
                self._terminate_watchers()
                await self._retry(self._relist)
            except errors.StorageError as exc:
                log.warning("watch cache %s: etcd watch broke (%s); resuming after %d", self.prefix, exc, self.revision)
            except Exception:
                log.exception("watch cache %s: unexpected error; resuming", self.prefix)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _retry(self, fn) -> None:
        delay = 0.1
        while True:
            try:
                await fn()
                return
            except errors.StorageError as exc:
                log.warning("watch cache %s: %s; retrying", self.prefix, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- applying etcd events -------------------------------------------------------------------

    def _apply(self, event: WatchEvent) -> None:
        if event.type == "PROGRESS":
            if event.revision > self.revision:
                self.revision = event.revision
                self._wake_waiters()
            return
        key = event.key
        if event.type == "DELETED":
            if self._objects.pop(key, None) is not None:
                self._sorted_keys = None
            obj = event.obj or {}
        else:
            obj = event.obj  # type: ignore[assignment]
            if key not in self._objects:
                self._sorted_keys = None
            self._objects[key] = obj
        cache_event = CacheEvent(
            event.type, key, self._namespace_of_key(key), obj, event, event.revision,
            Delivery(event.type, obj, event.revision),
        )
        if len(self._events) == self._events.maxlen:
            self.oldest = self._events[0].revision
        self._events.append(cache_event)
        self.revision = event.revision
        self._dispatch(cache_event)
        self._wake_waiters()

    def _dispatch(self, event: CacheEvent) -> None:
        for watcher in tuple(self._watchers_all):
            self._deliver(watcher, event)
        if event.namespace is not None:
            for watcher in tuple(self._watchers_by_ns.get(event.namespace, ())):
                self._deliver(watcher, event)

    @staticmethod
    def _deliver(watcher: CacheWatcher, event: CacheEvent) -> None:
        if watcher.predicate is None:
            watcher.offer(event.delivery)
            return
        item = _filtered(watcher, event)
        if item is not None:
            watcher.offer(item)

    # --- reads ----------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._objects.get(key)

    async def wait_until_fresh(self, revision: int, timeout: float = FRESHNESS_TIMEOUT) -> None:
        """Wait until the cache reflects ``revision``; raises TooLargeResourceVersion on timeout.

        The cache advances on events of its resource and on etcd's periodic progress
        notifications. It never asks etcd for progress on demand: etcd 3.4.23 can answer such a
        request with a revision ahead of events it has not yet sent.
        """
        await self._ready.wait()
        if self.revision >= revision:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise errors.TooLargeResourceVersion(revision, self.revision) from None
        finally:
            self._waiters = [(r, f) for r, f in self._waiters if f is not future]

    def list(
        self,
        namespace: str | None,
        predicate: Predicate | None,
        *,
        limit: int = 0,
        after_key: str = "",
    ) -> ListResult:
        """The current objects (sorted by key, as etcd returns them), optionally one page of them."""
        keys = self._keys()
        prefix = self.prefix + (f"{namespace}/" if namespace else "")
        start = bisect.bisect_right(keys, after_key) if after_key else bisect.bisect_left(keys, prefix)
        items: list[Obj] = []
        objects = self._objects
        for i in range(start, len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                break
            obj = objects[key]
            if predicate is not None and not predicate(obj):
                continue
            items.append(obj)
            if limit and len(items) == limit:
                if i + 1 < len(keys) and keys[i + 1].startswith(prefix):
                    # relative to the listed prefix, as Store.list reads continue tokens
                    token = encode_continue(self.revision, key[len(prefix):] + "\x00")
                    return ListResult(items, self.revision, token)
                break
        return ListResult(items, self.revision)

    def _keys(self) -> list[str]:
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self._objects)
        return self._sorted_keys

    # --- watches --------------------------------------------------------------------------------

    def watch(
        self,
        revision: int,
        *,
        namespace: str | None,
        predicate: Predicate | None,
        allow_bookmarks: bool = False,
        send_initial_events: bool | None = None,
        initial_items: list[Obj] | None = None,
    ) -> CacheWatcher:
        """Register a watcher. ``revision`` 0 means "now, starting with the current state".

        Raises Expired when ``revision`` is older than the buffer (the caller may then watch etcd
        directly, see :func:`watch_from_storage`). A revision newer than the cache's is fine (the
        caller has checked it is not newer than etcd's): events up to it are skipped.
        ``initial_items`` replaces the cache snapshot as initial events (a consistent list read
        from etcd at ``revision``).
        """
        initial = send_initial_events if send_initial_events is not None else revision == 0
        if revision and revision < self.oldest:
            raise errors.Expired(self.prefix, f"too old resource version: {revision} ({self.oldest})")
        watcher = CacheWatcher(
            self, namespace, predicate, allow_bookmarks=allow_bookmarks, queue_limit=self.queue_limit
        )
        if initial_items is not None:
            watcher.preload([Delivery("ADDED", obj, _rv(obj)) for obj in initial_items])
        elif initial:
            snapshot = self.list(namespace, predicate)
            watcher.preload([Delivery("ADDED", obj, _rv(obj)) for obj in snapshot.items])
            revision = self.revision
        elif revision == 0:
            revision = self.revision  # "from now on", without the current state
        if revision > self.revision:
            # the client saw a newer revision (e.g. a list read from etcd): skip what it has seen
            watcher.min_revision = revision
        else:
            watcher.preload([item for item in self._replay(watcher, revision) if item is not None])
        if namespace is None or not self.namespaced:
            self._watchers_all.add(watcher)
        else:
            self._watchers_by_ns[namespace].add(watcher)
        if initial and send_initial_events:
            # queued directly: it must arrive even when min_revision hides events up to it
            watcher.preload([Delivery("BOOKMARK", {"initialEventsEnd": True}, max(revision, self.revision))])
        if self.closing:
            watcher.close()
        return watcher

    def _replay(self, watcher: CacheWatcher, revision: int):
        if revision >= self.revision:
            return
        start = bisect.bisect_right([e.revision for e in self._events], revision) if self._events else 0
        for i in range(start, len(self._events)):
            event = self._events[i]
            if watcher.namespace is not None and self.namespaced and event.namespace != watcher.namespace:
                continue
            yield event.delivery if watcher.predicate is None else _filtered(watcher, event)

    def send_bookmarks(self, now: float | None = None) -> None:
        """Give bookmark-enabled watchers a BOOKMARK with the current revision, at most once per interval."""
        now = time.monotonic() if now is None else now
        for watcher in self._all_watchers():
            if watcher.allow_bookmarks and now - watcher.last_bookmark >= self.bookmark_interval:
                watcher.bookmark(self.revision)

    def _all_watchers(self) -> list[CacheWatcher]:
        return [*self._watchers_all, *(w for ws in self._watchers_by_ns.values() for w in ws)]

    def _remove(self, watcher: CacheWatcher) -> None:
        self._watchers_all.discard(watcher)
        if watcher.namespace is not None:
            watchers = self._watchers_by_ns.get(watcher.namespace)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers_by_ns[watcher.namespace]

    def close_watchers(self) -> None:
        """Shutdown: end every watch, and every watch started from now on."""
        self.closing = True
        self._terminate_watchers()

    def _terminate_watchers(self) -> None:
        for watcher in self._all_watchers():
            watcher.close()

    def _wake_waiters(self) -> None:
        if not self._waiters:
            return
        for wanted, future in self._waiters:
            if wanted <= self.revision and not future.done():
                future.set_result(None)

    def _namespace_of_key(self, key: str) -> str | None:
        if not self.namespaced:
            return None
        rest = key[len(self.prefix):]
        return rest.split("/", 1)[0]

    def _key_of(self, obj: Obj) -> str:
        meta = obj["metadata"]
        if self.namespaced:
            return f"{self.prefix}{meta.get('namespace', '')}/{meta['name']}"
        return f"{self.prefix}{meta['name']}"


def _rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _filtered(watcher: CacheWatcher, event: CacheEvent) -> Delivery | None:
    """The event as this watcher's selectors see it (None when it is not visible at all)."""
    prev_matches = event.prev is not None and watcher.matches(event.prev)
    if event.type == "DELETED":
        return event.delivery if prev_matches else None
    if watcher.matches(event.obj):
        if prev_matches or event.prev is None:
            return event.delivery
        return Delivery("ADDED", event.obj, event.revision)
    if prev_matches:
        return Delivery("DELETED", event.prev_at_revision(), event.revision)
    return None


async def watch_from_storage(
    store: Store, prefix: str, revision: int, predicate: Predicate | None
) -> AsyncIterator[Delivery]:
    """A watch served straight from etcd: for revisions older than the cache's buffer."""
    async with store.watch(prefix, revision=revision) as stream:
        async for event in stream:
            if event.type == "PROGRESS":
                continue
            if predicate is None:
                yield Delivery(event.type, event.obj, event.revision)  # type: ignore[arg-type]
                continue
            cur = event.type != "DELETED" and predicate(event.obj)  # type: ignore[arg-type]
            prev = event.prev is not None and predicate(event.prev)
            if event.type == "DELETED":
                if prev:
                    yield Delivery("DELETED", event.obj, event.revision)  # type: ignore[arg-type]
            elif cur:
                kind = "MODIFIED" if prev else "ADDED"
                yield Delivery(kind, event.obj, event.revision)  # type: ignore[arg-type]
            elif prev:
                meta = {**event.prev["metadata"], "resourceVersion": str(event.revision)}  # type: ignore[index]
                yield Delivery("DELETED", {**event.prev, "metadata": meta}, event.revision)  # type: ignore[arg-type]
