"""Writing pod statuses to the API server: only when they changed, coalesced under load.

Workers hand in the status they computed after every sync (:meth:`StatusManager.set_status`); most of
the time it equals what was last written (or, right after a kubelet restart, what the API server already
has) and nothing is sent. A changed status queues its pod once — however many syncs happen before a writer
gets to it, only the newest status is written — and a few writers patch ``pods/<name>/status`` concurrently.
The patch is a JSON merge patch of the whole status, carrying ``metadata.uid`` so it can never land on a
pod that was deleted and recreated with the same name. :meth:`flush` waits until a pod's latest status is
written, which termination needs before the pod object may be deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelet import metrics
from machinery.client import ApiClient
from machinery.client.resources import PODS
from machinery.errors import StatusError, is_conflict, is_invalid, is_not_found

log = logging.getLogger(__name__)

WRITERS = 4
RETRY_DELAY = 1.0


@dataclass
class _Entry:
    namespace: str
    name: str
    status: dict[str, Any]
    version: int = 0


class StatusManager:
    def __init__(self, client: ApiClient, *, writers: int = WRITERS) -> None:
        self.client = client
        self.writers = writers
        self._desired: dict[str, _Entry] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._written_version: dict[str, int] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._progress = asyncio.Event()  # set (and replaced) whenever a write finished
        self.writes = 0

    def set_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        last = self._written.get(uid)
        if last is None:
            last = pod.get("status") or {}
        entry = self._desired.get(uid)
        if entry is not None and entry.status == status:
            return
        version = (entry.version + 1) if entry is not None else 1
        self._desired[uid] = _Entry(meta["namespace"], meta["name"], status, version)
        if status == last:
            self._written_version[uid] = version
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()
            return
        if uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def status_of(self, uid: str) -> dict[str, Any] | None:
        entry = self._desired.get(uid)
        return entry.status if entry is not None else None

    async def flush(self, uid: str) -> None:
        """Return once the newest status handed in for ``uid`` is written (or cannot be: pod gone)."""
        while uid in self._desired and self._written_version.get(uid, 0) < self._desired[uid].version:
            await self._progress.wait()

    def forget(self, uid: str) -> None:
        self._desired.pop(uid, None)
        self._written.pop(uid, None)
        self._written_version.pop(uid, None)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for i in range(self.writers):
                tasks.create_task(self._writer(), name=f"status writer {i}")

    async def _writer(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            entry = self._desired.get(uid)
            if entry is None:
                continue
            try:
                await self._write(uid, entry)
            except StatusError as err:
                if is_not_found(err) or is_conflict(err) or is_invalid(err):
                    log.info("status of pod %s/%s not written: %s", entry.namespace, entry.name, err)
                    self._mark_written(uid, entry)  # the pod is gone, replaced or refuses it: nothing to retry
                    continue
                log.warning("writing the status of pod %s/%s failed (will retry): %s", entry.namespace,
                            entry.name, err)
                await asyncio.sleep(RETRY_DELAY)
                self._requeue(uid)
            except Exception as err:  # transport errors: retry later
                log.warning("writing the status of pod %s/%s failed (will retry): %s", entry.namespace,
                            entry.name, err)
                await asyncio.sleep(RETRY_DELAY)
                self._requeue(uid)

    def _requeue(self, uid: str) -> None:
        if uid in self._desired and uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    async def _write(self, uid: str, entry: _Entry) -> None:
        patch = {"metadata": {"uid": uid}, "status": entry.status}
        await self.client.patch(PODS, entry.name, patch, entry.namespace, patch_type="merge", subresource="status")
        self.writes += 1
        metrics.STATUS_WRITES.inc()
        self._written[uid] = entry.status
        self._mark_written(uid, entry)

    def _mark_written(self, uid: str, entry: _Entry) -> None:
        self._written_version[uid] = max(self._written_version.get(uid, 0), entry.version)
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()
