"""Writing pod statuses to the API server: only when they changed, coalesced under load.

Workers hand in the status they computed after every sync (:meth:`StatusManager.set_status`); most of
the time it equals what was last written (or, right after a kubelet restart, what the API server already
has) and nothing is sent. A changed status queues its pod once — however many syncs happen before a writer
gets to it, only the newest status is written, and a status that changed again while its write was in
flight is written again afterwards — and a few writers patch ``pods/<name>/status`` concurrently.

The patch is a JSON merge patch of the whole status, carrying ``metadata.uid`` so it can never land on a
pod that was deleted and recreated with the same name. The conditions the kubelet does not own
(PodScheduled, DisruptionTarget, readiness gates' conditions, ...) are taken from the freshest copy of the
pod at write time (``current``), so a condition another component set since the sync is kept (the window
left is the informer's lag). :meth:`flush` waits until a pod's latest status is written, which termination
needs before the pod object may be deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelet import metrics
from kubelet.pods.status import OWNED_CONDITIONS
from machinery.client import ApiClient
from machinery.client.resources import PODS
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_conflict, is_invalid, is_not_found

log = logging.getLogger(__name__)

WRITERS = 4
RETRY_DELAY = 1.0

PodLookup = Callable[[str, str], Mapping[str, Any] | None]


@dataclass
class _Entry:
    namespace: str
    name: str
    status: dict[str, Any]
    version: int = 0


class StatusManager:
    def __init__(self, client: ApiClient, *, writers: int = WRITERS,
                 current: PodLookup = lambda namespace, name: None, clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.clock = clock
        self.writers = writers
        self.current = current
        self._desired: dict[str, _Entry] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._written_version: dict[str, int] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._in_flight: set[str] = set()
        self._progress = asyncio.Event()  # set (and replaced) whenever a write finished
        self.writes = 0

    def set_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        entry = self._desired.get(uid)
        if entry is not None and entry.status == status:
            return
        version = (entry.version + 1) if entry is not None else 1
        self._desired[uid] = _Entry(meta["namespace"], meta["name"], status, version)
        last = self._written.get(uid)
        if last is None:
            last = pod.get("status") or {}
        if status == last and uid not in self._in_flight and uid not in self._queued:
            self._mark_written(uid, version)
            return
        self._enqueue(uid)

    async def flush(self, uid: str) -> None:
        """Return once the newest status handed in for ``uid`` is written (or cannot be: pod gone)."""
        while uid in self._desired and self._written_version.get(uid, 0) < self._desired[uid].version:
            await self._progress.wait()

    def forget(self, uid: str) -> None:
        self._desired.pop(uid, None)
        self._written.pop(uid, None)
        self._written_version.pop(uid, None)
        self._notify()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for i in range(self.writers):
                tasks.create_task(self._writer(), name=f"status writer {i}")

    def _enqueue(self, uid: str) -> None:
        if uid in self._desired and uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    async def _writer(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            entry = self._desired.get(uid)
            if entry is None or uid in self._in_flight:
                continue
            if entry.status == self._written.get(uid):  # changed and changed back before it was sent
                self._mark_written(uid, entry.version)
                continue
            self._in_flight.add(uid)
            try:
                await self._write(uid, entry)
            except StatusError as err:
                if is_not_found(err) or is_conflict(err) or is_invalid(err):
                    log.info("status of pod %s/%s not written: %s", entry.namespace, entry.name, err)
                    self._mark_written(uid, entry.version)  # the pod is gone, replaced or refuses it
                else:
                    await self._retry_later(uid, entry, err)
            except Exception as err:  # transport errors: retry later
                await self._retry_later(uid, entry, err)
            finally:
                self._in_flight.discard(uid)
            newest = self._desired.get(uid)
            if newest is not None and newest.version > self._written_version.get(uid, 0):
                self._enqueue(uid)  # it changed again while this write was in flight

    async def _retry_later(self, uid: str, entry: _Entry, err: Exception) -> None:
        log.warning("writing the status of pod %s/%s failed (will retry): %s", entry.namespace, entry.name, err)
        await self.clock.sleep(RETRY_DELAY)

    async def _write(self, uid: str, entry: _Entry) -> None:
        status = dict(entry.status)
        fresh = self.current(entry.namespace, entry.name)
        if fresh is not None and (fresh.get("metadata") or {}).get("uid") == uid:
            status["conditions"] = merge_conditions((fresh.get("status") or {}).get("conditions") or [],
                                                    entry.status.get("conditions") or [])
        patch = {"metadata": {"uid": uid}, "status": status}
        await self.client.patch(PODS, entry.name, patch, entry.namespace, patch_type="merge", subresource="status")
        self.writes += 1
        metrics.STATUS_WRITES.inc()
        if uid in self._desired:  # not forgotten meanwhile
            self._written[uid] = entry.status
            self._mark_written(uid, entry.version)

    def _mark_written(self, uid: str, version: int) -> None:
        if uid in self._desired:
            self._written_version[uid] = max(self._written_version.get(uid, 0), version)
        self._notify()

    def _notify(self) -> None:
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()


def merge_conditions(current: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod's conditions others own, as they are now, followed by the ones the kubelet owns (ours); the
    PodScheduled the kubelet adds for a pod bound directly is kept when the pod has none."""
    owned = [c for c in ours if c.get("type") in OWNED_CONDITIONS]
    theirs = [c for c in current if c.get("type") not in OWNED_CONDITIONS]
    scheduled = [c for c in ours if c.get("type") == "PodScheduled"
                 and not any(t.get("type") == "PodScheduled" for t in theirs)]
    return scheduled + theirs + owned
