"""Spreading periodic per-node work evenly over its interval, so 1,000 nodes make a steady stream of writes.

A thousand real kubelets renew their Leases every 10 s at unrelated moments: about 100 writes per
second, never a burst of 1,000. :class:`SpreadLoop` reproduces that from one process: item ``i`` of
``count`` is due at ``start + i * interval / count`` in every round, and its action runs through a
bounded pool of writers. The loop keeps to its timetable without drifting (due times are computed
from the start, not from when the previous action finished); when the writers fall so far behind
that a slot is late by more than a whole interval, it starts a fresh timetable from now instead of
firing the backlog in a burst. An item whose previous action is still running is skipped for that
round (its write is merely late, as a kubelet's would be).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from machinery.clock import Clock

log = logging.getLogger(__name__)


def spread_offsets(count: int, interval: float) -> list[float]:
    """Seconds after the start of a round at which each of ``count`` items is due (evenly spaced)."""
    if count <= 0:
        return []
    step = interval / count
    return [i * step for i in range(count)]


class SpreadLoop:
    """Run ``action(i)`` for i in 0..count-1 once per ``interval``, spread evenly, ``limit`` at a time.

    ``action`` must not raise for expected failures (it logs and counts them); anything it raises is
    logged here and the loop goes on. :attr:`skipped` counts slots dropped because the previous action
    of the same item was still running.
    """

    def __init__(self, name: str, count: int, interval: float, action: Callable[[int], Awaitable[None]],
                 clock: Clock, *, limit: int = 16, first_delay: float | None = None) -> None:
        self.name = name
        self.count = count
        self.interval = interval
        self.action = action
        self.clock = clock
        self.first_delay = interval / max(count, 1) if first_delay is None else first_delay
        self.skipped = 0
        self.restarts = 0
        self._slots = asyncio.Semaphore(limit)
        self._running: set[int] = set()

    async def run(self) -> None:
        """Until cancelled (cancelling also cancels the actions in flight)."""
        if self.count <= 0:
            await asyncio.Event().wait()
        offsets = spread_offsets(self.count, self.interval)
        async with asyncio.TaskGroup() as tasks:
            start = self.clock.monotonic() + self.first_delay
            round_number = 0
            while True:
                for index, offset in enumerate(offsets):
                    due = start + round_number * self.interval + offset
                    late = self.clock.monotonic() - due
                    if late > self.interval:
                        log.warning("%s: %.1f s behind schedule; starting a fresh timetable", self.name, late)
                        self.restarts += 1
                        start, round_number, due = self.clock.monotonic() - offset, 0, self.clock.monotonic()
                    await self.clock.sleep(due - self.clock.monotonic())
                    await self._dispatch(tasks, index)
                round_number += 1

    async def _dispatch(self, tasks: asyncio.TaskGroup, index: int) -> None:
        if index in self._running:
            self.skipped += 1
            return
        await self._slots.acquire()  # back-pressure: the timetable waits for a free writer
        self._running.add(index)
        tasks.create_task(self._run_one(index), name=f"{self.name} {index}")

    async def _run_one(self, index: int) -> None:
        try:
            await self.action(index)
        except Exception:
            log.exception("%s: action for item %d failed", self.name, index)
        finally:
            self._running.discard(index)
            self._slots.release()
