"""Where the kubelet reads the ConfigMaps, Secrets and Services its pods refer to.

A container's environment and its configMap/secret volumes are built from API objects, and a pod with N
containers would otherwise GET the same ConfigMap N times per start (and again on every volume refresh).
:class:`ApiObjectSource` puts a short TTL cache in front of plain GETs/LISTs and shares one in-flight request
between concurrent callers. Expired entries are swept out on access (at most once per TTL), so objects the
kubelet stopped asking for — a deleted pod's ConfigMaps, a gone namespace's Services — do not pile up.

Simplification relative to Kubernetes: the kubelet there keeps a watch-based cache of exactly the objects its
pods reference; we use a TTL cache (default 10 s), so a changed object is seen within ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from machinery.client.resources import CONFIG_MAPS, SECRETS, SERVICES, Resource
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import is_not_found

DEFAULT_TTL = 10.0


class ObjectSource(Protocol):
    """Read access to the objects a pod's environment and volumes are made from (results are read-only)."""

    async def config_map(self, namespace: str, name: str) -> dict | None:
        """The ConfigMap, or None when it does not exist."""
        ...

    async def secret(self, namespace: str, name: str) -> dict | None:
        """The Secret, or None when it does not exist."""
        ...

    async def services(self, namespace: str) -> list[dict]:
        """Every Service of ``namespace``."""
        ...


class ApiObjectSource:
    """:class:`ObjectSource` over an ``ApiClient`` with a TTL cache.

    Contracts: a 404 answers None (and is cached like a hit); any other API error propagates and is not cached;
    returned objects are shared between callers and must not be mutated.
    """

    def __init__(self, client: Any, *, clock: Clock = REAL_CLOCK, ttl: float = DEFAULT_TTL) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, Any]] = {}  # key -> (expires at, value)
        self._inflight: dict[tuple[str, str, str], asyncio.Future[Any]] = {}
        self._next_sweep = clock.monotonic() + ttl

    async def config_map(self, namespace: str, name: str) -> dict | None:
        return await self._cached(("configmaps", namespace, name), lambda: self._get(CONFIG_MAPS, namespace, name))

    async def secret(self, namespace: str, name: str) -> dict | None:
        return await self._cached(("secrets", namespace, name), lambda: self._get(SECRETS, namespace, name))

    async def services(self, namespace: str) -> list[dict]:
        return await self._cached(("services", namespace, ""), lambda: self._list(SERVICES, namespace))

    async def _get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        try:
            return await self._client.get(resource, name, namespace)
        except Exception as err:
            if is_not_found(err):
                return None
            raise

    async def _list(self, resource: Resource, namespace: str) -> list[dict]:
        listed = await self._client.list_all(resource, namespace)
        return list(listed.get("items") or [])

    async def _cached(self, key: tuple[str, str, str], fetch: Callable[[], Awaitable[Any]]) -> Any:
        now = self._clock.monotonic()
        self._evict_expired(now)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:  # someone is already asking: share their answer (or their error)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # we were cancelled ourselves
                # the asker was cancelled, not us: ask ourselves
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
        except BaseException as err:
            if not isinstance(err, asyncio.CancelledError):
                future.set_exception(err)
                future.exception()  # mark retrieved: no "exception never retrieved" when nobody shared it
            else:
                future.cancel()
            raise
        else:
            future.set_result(value)
            self._cache[key] = (self._clock.monotonic() + self._ttl, value)
            return value
        finally:
            self._inflight.pop(key, None)

    def _evict_expired(self, now: float) -> None:
        """Drop every expired entry, at most once per TTL: an entry lives at most two TTLs after its fetch, and a
        read costs O(1) amortized."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._ttl
        for key in [key for key, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
