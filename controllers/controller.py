"""The shape every controller shares: informers feed a work queue of keys, workers reconcile keys.

A controller subclass names itself (``NAME``), asks the :class:`ControllerContext`'s shared informer
factory for the informers it needs in ``__init__`` and registers handlers that only enqueue
``"namespace/name"`` keys. :meth:`Controller.run` waits for those caches to sync and runs ``workers``
concurrent loops over the queue. ``reconcile(key)`` is level-driven: it reads the current state
from the caches, acts through the API, and returns ``None`` (done), a number of seconds (look again
then) or raises (retry with the queue's per-key exponential backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from machinery.client import ApiClient
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError
from machinery.events import EventRecorder
from machinery.informer import SharedInformer, SharedInformerFactory
from machinery.meta import key_of
from machinery.ratelimit import default_controller_rate_limiter
from machinery.workqueue import QueueShutDown, WorkQueue

log = logging.getLogger(__name__)


class RetryError(Exception):
    """An expected, transient reason to try a key again later (logged without a traceback)."""


@dataclass
class ControllerContext:
    """What the manager gives every controller: one client, one informer factory, one recorder, one clock."""

    client: ApiClient
    informers: SharedInformerFactory
    recorder: EventRecorder
    clock: Clock = REAL_CLOCK


class Controller:
    NAME: ClassVar[str] = ""
    WORKERS: ClassVar[int] = 5

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.recorder = ctx.recorder
        self.queue: WorkQueue = WorkQueue(self.NAME, rate_limiter=default_controller_rate_limiter(ctx.clock),
                                          clock=ctx.clock)
        self._watched: list[SharedInformer] = []

    def informer(self, resource, **kw: Any) -> SharedInformer:
        """A shared informer this controller waits for before its workers start."""
        informer = self.ctx.informers.informer(resource, **kw)
        self._watched.append(informer)
        return informer

    def synced(self) -> bool:
        """Whether every informer this controller reads from has synced."""
        return all(i.has_synced() for i in self._watched)

    def enqueue(self, obj: Mapping[str, Any]) -> None:
        self.queue.add(key_of(obj))

    async def reconcile(self, key: str) -> float | None:
        raise NotImplementedError

    async def run(self, workers: int | None = None) -> None:
        """Wait for the caches, then process keys until cancelled (the queue is shut down on the way out)."""
        try:
            await asyncio.gather(*(i.wait_for_sync() for i in self._watched))
            log.info("%s controller: caches synced, starting %d workers", self.NAME, workers or self.WORKERS)
            async with asyncio.TaskGroup() as tasks:
                for _ in range(workers or self.WORKERS):
                    tasks.create_task(self._worker())
        finally:
            self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """Reconcile one key and decide, from the outcome, when it is looked at again."""
        try:
            requeue_after = await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            level = logging.INFO if self.queue.num_requeues(key) < 5 else logging.WARNING
            log.log(level, "%s %s: %s (retry %d)", self.NAME, key, _describe(exc), self.queue.num_requeues(key) + 1,
                    exc_info=not _expected(exc))
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if requeue_after is not None:
            self.queue.add_after(key, requeue_after)


def _expected(exc: Exception) -> bool:
    """API errors (conflicts, not found…) are part of life; anything else deserves a traceback."""
    return isinstance(exc, StatusError | RetryError)


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
