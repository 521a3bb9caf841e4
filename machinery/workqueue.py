"""The controllers' work queue: client-go's rate-limiting, delaying work queue for asyncio.

Controllers do not act on watch events directly: they put the key of the changed object into a
queue and workers reconcile keys taken from it. The queue gives the guarantees that make this
correct and cheap, the same as client-go's ``workqueue``:

* fair - items are handed out in the order they were added;
* stingy - an item added several times before a worker takes it is handed out once;
* exclusive - an item a worker is processing (between :meth:`WorkQueue.get` and
  :meth:`WorkQueue.done`) is never handed to another worker; if it is added meanwhile, it is
  queued again when the first worker calls ``done``;
* delaying - :meth:`WorkQueue.add_after` adds an item once a delay has passed;
* rate limited - :meth:`WorkQueue.add_rate_limited` retries a failed item after the delay its
  :class:`~machinery.ratelimit.RateLimiter` chooses, until :meth:`WorkQueue.forget`.

Time comes from an injectable :class:`~machinery.clock.Clock`, so tests drive the delays with a
``FakeClock``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from machinery.clock import REAL_CLOCK, Clock
from machinery.ratelimit import RateLimiter, default_controller_rate_limiter

__all__ = ["QueueShutDown", "WorkQueue"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and empty: the worker should exit."""


class WorkQueue(Generic[T]):
    """A fair, de-duplicating, delaying and rate-limiting queue of hashable items (usually keys).

    Workers loop on ``item = await queue.get()``, process the item, then call ``queue.done(item)``;
    on failure they call ``queue.add_rate_limited(item)``, on success ``queue.forget(item)``.

    After :meth:`shutdown`, adds are ignored, items still queued are handed out, and ``get`` raises
    :class:`QueueShutDown` once the queue is empty (client-go returns ``shutdown=True``); items
    waiting for an ``add_after`` delay are dropped.

    Metrics: ``adds_total`` (items that entered the queue; a duplicate of a queued item does not
    count), ``retries_total`` (``add_rate_limited`` calls), :attr:`depth`,
    :meth:`longest_processing_seconds` and the ``on_work_duration(seconds)`` callback, called by
    ``done`` with the time since the matching ``get``.
    """

    def __init__(
        self,
        name: str = "",
        *,
        rate_limiter: RateLimiter | None = None,
        clock: Clock = REAL_CLOCK,
        on_work_duration: Callable[[float], None] | None = None,
    ) -> None:
        self.name = name
        self.rate_limiter: RateLimiter = rate_limiter or default_controller_rate_limiter(clock)
        self.on_work_duration = on_work_duration
        self.adds_total = 0
        self.retries_total = 0
        self._clock = clock
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()  # needs processing: queued, or added again while processing
        self._processing: dict[T, float] = {}  # item -> monotonic time it was handed out
        self._getters: deque[asyncio.Future[None]] = deque()
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._shutting_down = False  # no more adds
        self._draining = False
        # The delaying part: a heap of (deadline, seq, item); an entry is live only while
        # self._deadlines[item] is its seq (a newer, earlier add_after supersedes it).
        self._waiting: list[tuple[float, int, T]] = []
        self._deadlines: dict[T, tuple[float, int]] = {}
        self._seq = itertools.count()
        self._waiting_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    # --- state ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Items queued for a worker (not those being processed nor those waiting for a delay)."""
        return len(self._queue)

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def longest_processing_seconds(self) -> float:
        """How long the oldest item still being processed has been out (0 if none)."""
        if not self._processing:
            return 0.0
        return self._clock.monotonic() - min(self._processing.values())

    # --- the basic queue --------------------------------------------------------------------------

    def add(self, item: T) -> None:
        """Queue ``item`` unless it is already queued; if it is being processed, queue it after ``done``."""
        if self._shutting_down or item in self._dirty:
            return
        self.adds_total += 1
        self._dirty.add(item)
        if item not in self._processing:
            self._push(item)

    async def get(self) -> T:
        """Wait for the next item and mark it as being processed. Raises :class:`QueueShutDown`."""
        self._ensure_waiting_task()
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken for an item we will not take: pass it on
                elif waiter in self._getters:
                    self._getters.remove(waiter)
                raise
        item = self._queue.popleft()
        self._dirty.discard(item)
        self._processing[item] = self._clock.monotonic()
        return item

    def done(self, item: T) -> None:
        """Mark ``item`` as processed; if it was added meanwhile, queue it again. Unknown items are ignored."""
        started = self._processing.pop(item, None)
        if started is None:
            return
        if item in self._dirty:
            self._push(item)
        elif not self._processing:
            self._resolve(self._drain_waiters)
        if self.on_work_duration is not None:
            self.on_work_duration(self._clock.monotonic() - started)

    def _push(self, item: T) -> None:
        self._queue.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @staticmethod
    def _resolve(waiters: list[asyncio.Future[None]] | deque[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()

    # --- shutting down ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop now: ignore adds, drop delayed items, and make ``get`` raise once the queue is empty."""
        self._stop_accepting()
        self._draining = False
        self._resolve(self._drain_waiters)

    async def shutdown_with_drain(self) -> None:
        """Stop accepting adds, wait until no item is being processed, then :meth:`shutdown`."""
        self._stop_accepting()
        self._draining = True
        while self._processing and self._draining:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter
        self.shutdown()
        task, self._waiting_task = self._waiting_task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _stop_accepting(self) -> None:
        self._shutting_down = True
        self._resolve(self._getters)  # getters re-check: they take queued items or raise QueueShutDown
        self._waiting.clear()
        self._deadlines.clear()
        if self._waiting_task is not None:
            self._waiting_task.cancel()

    # --- delaying and rate limiting ---------------------------------------------------------------

    def add_after(self, item: T, seconds: float) -> None:
        """Add ``item`` once ``seconds`` have passed; of several pending delays the earliest wins."""
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(item)
            return
        deadline = self._clock.monotonic() + seconds
        current = self._deadlines.get(item)
        if current is not None and current[0] <= deadline:
            return
        seq = next(self._seq)
        self._deadlines[item] = (deadline, seq)
        heapq.heappush(self._waiting, (deadline, seq, item))
        if self._waiting[0][1] == seq:
            self._wakeup.set()  # a new earliest deadline: the delaying task must sleep less
        self._ensure_waiting_task()

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` after the delay the rate limiter chooses for it (a retry)."""
        if self._shutting_down:
            return
        self.retries_total += 1
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Tell the rate limiter ``item`` succeeded: its next retry starts from the shortest delay."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)

    def _ensure_waiting_task(self) -> None:
        """Start the one task that moves delayed items into the queue, if items wait and a loop is running."""
        if self._waiting_task is not None or self._shutting_down or not self._waiting:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the next add_after or get made from within the loop
        self._waiting_task = loop.create_task(self._waiting_loop(), name=f"workqueue {self.name} delays")
        self._waiting_task.add_done_callback(self._waiting_task_done)

    def _waiting_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("work queue %r: delaying task failed", self.name, exc_info=task.exception())

    async def _waiting_loop(self) -> None:
        """Move due items into the queue; sleep until the earliest deadline or a new, earlier one."""
        while True:
            now = self._clock.monotonic()
            while self._waiting and self._waiting[0][0] <= now:
                deadline, seq, item = heapq.heappop(self._waiting)
                if self._deadlines.get(item) == (deadline, seq):
                    del self._deadlines[item]
                    self.add(item)
            if not self._waiting:
                self._waiting_task = None  # nothing left to wait for: the next add_after starts a new task
                return
            self._wakeup.clear()
            pending = {
                asyncio.ensure_future(self._wakeup.wait()),
                asyncio.ensure_future(self._clock.sleep(self._waiting[0][0] - now)),
            }
            try:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for future in pending:
                    future.cancel()
