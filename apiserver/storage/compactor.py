"""Periodic compaction of etcd history, as kube-apiserver does.

Every interval the revision seen one interval earlier is compacted, so at least one interval of
history (default five minutes) stays available for watches to resume from. Several API servers may
compact concurrently; compacting an already compacted revision is harmless.
"""

from __future__ import annotations

import asyncio
import logging

from apiserver.storage import errors
from apiserver.storage.store import Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0


async def run_compactor(store: Store, interval: float = DEFAULT_INTERVAL) -> None:
    """Run forever (cancel to stop)."""
    previous = 0
    while True:
        await asyncio.sleep(interval)
        try:
            current = await store.current_revision()
            if previous:
                await store.compact(previous)
                log.info("compacted etcd history up to revision %d", previous)
            previous = current
        except errors.StorageError as exc:
            log.warning("compaction skipped: %s", exc)
