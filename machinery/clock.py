"""An injectable clock, so that time-driven logic (backoff, resync, leases, rollouts) is testable.

Components take a :class:`Clock` and never call ``time``/``asyncio.sleep`` directly. Production
code uses :data:`REAL_CLOCK`; unit tests use :class:`FakeClock`, whose ``advance`` wakes the
sleepers whose deadline has passed, so no test waits for real time to pass.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Monotonic seconds for intervals, wall-clock time for timestamps written into objects."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


REAL_CLOCK = Clock()


class FakeClock(Clock):
    """A clock that only moves when told to. ``sleep`` returns once ``advance`` has passed its deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._mono = 1000.0
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed (call, then yield to the loop)."""
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (lets a test wait until a component has gone to sleep)."""
        return sum(1 for *_, f in self._sleepers if not f.done())
