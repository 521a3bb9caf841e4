"""etcd leases for objects that expire (Events live one hour, like kube-apiserver's --event-ttl).

Granting a lease per write would double the cost of every Event, so, as kube-apiserver does, one
lease is shared by all writes within a short window: it is granted with the TTL plus the window,
so every object attached to it lives at least the TTL.
"""

from __future__ import annotations

import asyncio
import time

from apiserver.storage.etcd import EtcdClient

REUSE_WINDOW = 60.0


class LeaseManager:
    def __init__(self, client: EtcdClient, *, window: float = REUSE_WINDOW, clock=time.monotonic) -> None:
        self._client = client
        self._window = window
        self._clock = clock
        self._leases: dict[int, tuple[int, float]] = {}  # ttl -> (lease id, granted at)
        self._lock = asyncio.Lock()

    async def lease_for(self, ttl: int) -> int:
        """A lease that keeps an object written now for at least ``ttl`` seconds."""
        now = self._clock()
        cached = self._leases.get(ttl)
        if cached is not None and now - cached[1] < self._window:
            return cached[0]
        async with self._lock:
            cached = self._leases.get(ttl)
            if cached is not None and now - cached[1] < self._window:
                return cached[0]
            lease_id = await self._client.lease_grant(ttl + int(self._window))
            self._leases[ttl] = (lease_id, now)
            return lease_id

