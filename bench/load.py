"""Load generation shared by the benchmarks: N operations with a fixed number in flight, and percentiles."""

from __future__ import annotations

import asyncio
import time

CONCURRENCY = 64


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run_concurrently(n: int, worker, concurrency: int = CONCURRENCY) -> tuple[float, list[float]]:
    """Run ``worker(i, state)`` for i in range(n) with ``concurrency`` in flight; returns (seconds, latencies).

    ``worker.open(lane)``, when defined, makes each lane's ``state`` (e.g. its own connection).
    """
    latencies: list[float] = []
    counter = iter(range(n))

    async def lane(lane_id: int):
        state = await worker.open(lane_id) if hasattr(worker, "open") else None
        for i in counter:
            t0 = time.perf_counter()
            await worker(i, state)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(lane(i) for i in range(concurrency)))
    return time.perf_counter() - started, latencies
