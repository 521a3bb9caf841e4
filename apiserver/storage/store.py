"""The storage interface over etcd with Kubernetes semantics.

Contracts (modelled on kube-apiserver's ``storage.Interface``):

- ``resourceVersion`` is etcd's ``mod_revision`` and is never stored in the value.
- :meth:`Store.create` is a transaction on ``mod_revision == 0``; it fails with AlreadyExists.
- :meth:`Store.guaranteed_update` calls a pure ``try_update(current)`` until its write wins a
  compare-and-swap on ``mod_revision``; a write that changes nothing is skipped.
- :meth:`Store.delete` honours preconditions (uid, resourceVersion) and retries on races.
- :meth:`Store.list` reads every page at one revision; the continue token carries the next key and
  that revision, and a token whose revision was compacted gives Expired (410).
- Keys given to :meth:`Store.list` and :meth:`Store.count` are prefixes; a trailing ``/`` is
  added so that ``/registry/pods/a`` never lists ``/registry/pods/ab``.

Only this package talks to etcd (through :mod:`apiserver.storage.etcd`).
"""

from __future__ import annotations

import base64
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from apiserver.metrics import ETCD_LATENCY
from apiserver.storage import errors
from apiserver.storage.codec import decode, encode, with_resource_version
from apiserver.storage.etcd import (
    EtcdClient,
    EtcdCompacted,
    EtcdError,
    EtcdFutureRevision,
    EtcdRequestTooLarge,
    EtcdUnavailable,
    prefix_range_end,
)
from apiserver.storage.leases import LeaseManager

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]
TryUpdate = Callable[[Obj | None], "Obj | Awaitable[Obj]"]

# etcd rejects requests above --max-request-bytes (1.5 MiB by default).
MAX_OBJECT_BYTES = int(1.5 * 1024 * 1024)
_PAGE_FETCH_MIN = 100


@dataclass(frozen=True)
class Preconditions:
    """DeleteOptions/update preconditions: the stored object must still have this uid/resourceVersion."""

    uid: str | None = None
    resource_version: str | None = None

    def check(self, key: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        if self.uid and meta.get("uid") != self.uid:
            raise errors.PreconditionFailed(
                key,
                f"Precondition failed: UID in precondition: {self.uid}, UID in object meta: {meta.get('uid', '')}",
            )
        if self.resource_version and meta.get("resourceVersion") != self.resource_version:
            raise errors.PreconditionFailed(
                key,
                "Precondition failed: ResourceVersion in precondition: "
                f"{self.resource_version}, ResourceVersion in object meta: {meta.get('resourceVersion', '')}",
            )


@dataclass
class ListResult:
    items: list[Obj]
    revision: int
    continue_token: str = ""
    remaining: int | None = None


_UNDECODED = object()


class WatchEvent:
    """A change as etcd reports it, decoded: ``type`` is ADDED, MODIFIED or DELETED.

    For DELETED, ``obj`` is the last state carrying the deletion revision as its resourceVersion.
    ``prev`` is the previous state (None for ADDED), decoded only when someone asks (selector
    transitions need it; most events never do). A progress notification has ``type`` "PROGRESS"
    and only ``revision`` set.
    """

    __slots__ = ("_prev", "_prev_revision", "_prev_value", "key", "obj", "revision", "type")

    def __init__(self, type: str, key: str, obj: Obj | None, prev: Obj | None, revision: int,
                 *, prev_value: bytes | None = None, prev_revision: int = 0) -> None:
        self.type = type
        self.key = key
        self.obj = obj
        self.revision = revision
        self._prev = prev if prev_value is None else _UNDECODED
        self._prev_value = prev_value
        self._prev_revision = prev_revision

    @property
    def prev(self) -> Obj | None:
        if self._prev is _UNDECODED:
            self._prev = decode(self._prev_value, self._prev_revision)  # type: ignore[arg-type]
        return self._prev  # type: ignore[return-value]


def encode_continue(revision: int, next_key: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": next_key})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        revision, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.InvalidContinue("", f"continue key is not valid: {exc}") from None
    if data.get("v") != "meta.k8s.io/v1" or revision <= 0 or start.startswith("/") or ".." in start:
        raise errors.InvalidContinue("", "continue key is not valid: incorrect encoded start resourceVersion")
    return revision, start


def _as_dir(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


class Store:
    """Kubernetes object storage on one etcd cluster. Stateless apart from the client."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self.leases = LeaseManager(client)

    async def lease_for(self, ttl: int) -> int:
        """A lease keeping objects written now for at least ``ttl`` seconds (shared, see leases.py)."""
        try:
            return await self.leases.lease_for(ttl)
        except EtcdError as exc:
            raise self._translate("", exc) from None

    @classmethod
    async def connect(cls, endpoints: list[str], *, timeout: float = 5.0) -> Store:
        """A store on a new etcd connection (made inside the running event loop)."""
        client = EtcdClient(endpoints, timeout=timeout)
        await client.connect()
        return cls(client)

    async def close(self) -> None:
        await self.client.close()

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, key: str) -> Obj:
        kv, _ = await self._call(key, self.client.get(key.encode()), "get")
        if kv is None:
            raise errors.NotFound(key)
        return decode(kv.value, kv.mod_revision)

    async def current_revision(self) -> int:
        """etcd's latest revision, read with a quorum range (used for consistent reads)."""
        resp = await self._call("", self.client.range(b"\x00", count_only=True), "range")
        return resp.header.revision

    async def count(self, prefix: str) -> int:
        p = _as_dir(prefix).encode()
        resp = await self._call(prefix, self.client.range(p, prefix_range_end(p), count_only=True), "range")
        return resp.count

    async def list(
        self,
        prefix: str,
        *,
        revision: int = 0,
        limit: int = 0,
        continue_token: str = "",
        predicate: Predicate | None = None,
    ) -> ListResult:
        """List objects under ``prefix`` at one revision.

        ``revision`` 0 reads the latest state. ``limit`` > 0 returns at most that many matching
        items and a continue token when more may follow. A ``continue_token`` fixes the revision
        to the one of the first page.
        """
        dir_prefix = _as_dir(prefix)
        p = dir_prefix.encode()
        range_end = prefix_range_end(p)
        start = p
        if continue_token:
            revision, start_suffix = decode_continue(continue_token)
            start = (dir_prefix + start_suffix).encode()

        items: list[Obj] = []
        fetch = max(limit, _PAGE_FETCH_MIN) if predicate and limit else limit
        while True:
            resp = await self._range_at(prefix, start, range_end, fetch, revision, bool(continue_token))
            revision = revision or resp.header.revision
            for i, kv in enumerate(resp.kvs):
                obj = decode(kv.value, kv.mod_revision)
                if predicate is not None and not predicate(obj):
                    continue
                items.append(obj)
                if limit and len(items) == limit:
                    if i == len(resp.kvs) - 1 and not resp.more:
                        return ListResult(items, revision)
                    return await self._page(prefix, dir_prefix, items, revision, kv.key, range_end, predicate)
            if not resp.more or not resp.kvs:
                return ListResult(items, revision)
            start = resp.kvs[-1].key + b"\x00"

    async def _range_at(self, prefix: str, start: bytes, end: bytes, limit: int, revision: int, continuing: bool):
        started = time.perf_counter()
        try:
            return await self.client.range(start, end, limit=limit, revision=revision)
        except EtcdCompacted:
            if continuing:
                raise errors.Expired(
                    prefix,
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.",
                ) from None
            raise errors.Expired(prefix, f"too old resource version: {revision}") from None
        except EtcdFutureRevision:
            raise errors.TooLargeResourceVersion(revision, 0) from None
        except EtcdError as exc:
            raise self._translate(prefix, exc) from None
        finally:
            ETCD_LATENCY.labels("range").observe(time.perf_counter() - started)

    async def _page(
        self, prefix: str, dir_prefix: str, items: list[Obj], revision: int, last_key: bytes,
        range_end: bytes, predicate: Predicate | None,
    ) -> ListResult:
        """A full page: the continue token points just past ``last_key`` at the same revision."""
        next_key = last_key + b"\x00"
        token = encode_continue(revision, next_key.decode()[len(dir_prefix):])
        if predicate is not None:
            return ListResult(items, revision, token)
        rest = await self._call(
            prefix, self.client.range(next_key, range_end, revision=revision, count_only=True), "range")
        if rest.count == 0:
            return ListResult(items, revision)
        return ListResult(items, revision, token, rest.count)

    async def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (already compacted revisions are ignored)."""
        try:
            await self.client.compact(revision)
        except EtcdCompacted:
            pass
        except EtcdError as exc:
            raise self._translate("", exc) from None

    # --- writes ---------------------------------------------------------------------------------

    async def create(self, key: str, obj: Obj, *, lease: int = 0) -> Obj:
        """Store a new object; raises AlreadyExists. Returns ``obj`` itself, stamped with its
        resourceVersion (the caller hands over ownership)."""
        data = self._encode(key, obj)
        result = await self._call(key, self.client.create(key.encode(), data, lease=lease))
        if not result.succeeded:
            raise errors.AlreadyExists(key)
        return with_resource_version(obj, result.revision)

    async def guaranteed_update(
        self,
        key: str,
        try_update: TryUpdate,
        *,
        preconditions: Preconditions | None = None,
        ignore_not_found: bool = False,
        lease: int = 0,
    ) -> Obj:
        """Apply ``try_update`` to the latest object until the compare-and-swap wins.

        ``try_update`` receives a private copy of the current object (None when it does not exist
        and ``ignore_not_found`` is set) and returns the desired object; it may raise to abort and
        is called again with fresh state after a conflict, so it must not have side effects.
        Returns the stored object. If nothing changed, nothing is written.
        """
        bkey = key.encode()
        kv, _ = await self._call(key, self.client.get(bkey), "get")
        while True:
            if kv is None:
                if not ignore_not_found:
                    raise errors.NotFound(key)
                current, current_rev, current_bytes = None, 0, b""
            else:
                current_rev, current_bytes = kv.mod_revision, kv.value
                current = decode(current_bytes, current_rev)
                if preconditions:
                    preconditions.check(key, current)
            desired = try_update(current)
            if inspect.isawaitable(desired):
                desired = await desired
            data = self._encode(key, desired)
            if current is not None and data == current_bytes:
                return decode(current_bytes, current_rev)
            if current is None:
                result = await self._call(key, self.client.create(bkey, data, lease=lease))
            else:
                result = await self._call(key, self.client.update(bkey, data, current_rev, lease=lease))
            if result.succeeded:
                return with_resource_version(desired, result.revision)
            kv = result.kv

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: Callable[[Obj], None] | None = None,
    ) -> Obj:
        """Delete the object; returns its last state. ``validate`` may raise to refuse."""
        bkey = key.encode()
        kv, _ = await self._call(key, self.client.get(bkey), "get")
        while True:
            if kv is None:
                raise errors.NotFound(key)
            current = decode(kv.value, kv.mod_revision)
            if preconditions:
                preconditions.check(key, current)
            if validate:
                validate(current)
            result = await self._call(key, self.client.delete(bkey, kv.mod_revision))
            if result.succeeded:
                return current
            kv = result.kv

    # --- watch ----------------------------------------------------------------------------------

    def watch(self, prefix: str, *, revision: int) -> StorageWatch:
        """Events under ``prefix`` strictly after ``revision``, in order (see :class:`StorageWatch`)."""
        p = _as_dir(prefix).encode()
        return StorageWatch(self, p, revision)

    # --- helpers --------------------------------------------------------------------------------

    def _encode(self, key: str, obj: Obj) -> bytes:
        data = encode(obj)
        if len(data) > MAX_OBJECT_BYTES:
            raise errors.TooLarge(key, "etcdserver: request is too large")
        return data

    async def _call(self, key: str, awaitable, operation: str = "txn"):
        started = time.perf_counter()
        try:
            return await awaitable
        except EtcdError as exc:
            raise self._translate(key, exc) from None
        finally:
            ETCD_LATENCY.labels(operation).observe(time.perf_counter() - started)

    @staticmethod
    def _translate(key: str, exc: EtcdError) -> errors.StorageError:
        if isinstance(exc, EtcdUnavailable):
            return errors.Unavailable(key, f"etcd is unavailable: {exc}")
        if isinstance(exc, EtcdRequestTooLarge):
            return errors.TooLarge(key, "etcdserver: request is too large")
        if isinstance(exc, EtcdCompacted):
            return errors.Expired(key, f"too old resource version: {exc}")
        return errors.Unavailable(key, f"etcd error: {exc}")


class StorageWatch:
    """An etcd watch decoded into :class:`WatchEvent`s: ``async with store.watch(...) as w``.

    Iterating raises Expired when the start revision was compacted and Unavailable when the stream
    breaks; the caller resumes from the last revision it saw (the watch cache does).
    ``request_progress()`` asks etcd for a PROGRESS event carrying its current revision.
    """

    def __init__(self, store: Store, prefix: bytes, revision: int) -> None:
        self._store = store
        self._prefix = prefix
        self._revision = revision
        self._cm = None
        self._stream = None

    async def __aenter__(self) -> StorageWatch:
        client = self._store.client
        self._cm = client.watch(self._prefix, prefix_range_end(self._prefix), start_revision=self._revision + 1)
        try:
            self._stream = await self._cm.__aenter__()
        except EtcdError as exc:
            raise self._error(exc) from None
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc_info)

    async def request_progress(self) -> None:
        if self._stream is not None:
            try:
                await self._stream.request_progress()
            except EtcdError:
                pass  # the iterator will surface the broken stream

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        try:
            async for batch in self._stream:
                if not batch.events:
                    yield WatchEvent("PROGRESS", "", None, None, batch.revision)
                    continue
                for ev in batch.events:
                    yield _decode_event(ev)
        except EtcdError as exc:
            raise self._error(exc) from None

    def _error(self, exc: EtcdError) -> errors.StorageError:
        if isinstance(exc, EtcdCompacted):
            return errors.Expired("", f"too old resource version: {self._revision} ({exc})")
        return Store._translate("", exc)


_PUT = 0  # mvccpb.Event.EventType


def _decode_event(ev) -> WatchEvent:
    key = ev.kv.key.decode()
    revision = ev.kv.mod_revision
    has_prev = ev.HasField("prev_kv")
    prev_value = ev.prev_kv.value if has_prev else None
    prev_revision = ev.prev_kv.mod_revision if has_prev else 0
    if ev.type == _PUT:
        obj = decode(ev.kv.value, revision)
        kind = "ADDED" if ev.kv.create_revision == revision else "MODIFIED"
    else:
        obj = decode(prev_value, revision) if has_prev else None
        kind = "DELETED"
    return WatchEvent(kind, key, obj, None, revision, prev_value=prev_value, prev_revision=prev_revision)
