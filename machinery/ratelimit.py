"""Rate limiting for clients and controllers: a token bucket and the work queue's retry limiters.

Controllers must not hammer the API server when a reconcile keeps failing, and clients must respect
their configured QPS/burst. Kubernetes solves both with a token bucket (golang.org/x/time/rate) and
with client-go's work queue rate limiters, which decide how long a failed item waits before it is
retried. This module provides the same pieces, driven by an injectable :class:`~machinery.clock.Clock`
so that tests never wait for real time:

* :class:`TokenBucket` - ``qps`` tokens per second, at most ``burst`` saved up;
* :class:`ItemExponentialRateLimiter` - per-item exponential backoff;
* :class:`BucketRateLimiter` - one bucket shared by all items (overall retry rate);
* :class:`MaxOfRateLimiter` - the longest delay of several limiters;
* :func:`default_controller_rate_limiter` - client-go's ``DefaultControllerRateLimiter``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from machinery.clock import REAL_CLOCK, Clock

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "TokenBucket",
    "default_controller_rate_limiter",
]


class TokenBucket:
    """A bucket refilled at ``qps`` tokens per second that holds at most ``burst`` tokens; starts full.

    Every request takes one token. :meth:`reserve` always takes it, letting the bucket go into debt,
    and returns how long the caller must wait before the token is really its own; later callers queue
    up behind it. ``qps <= 0`` means unlimited.
    """

    def __init__(self, qps: float, burst: int, clock: Clock = REAL_CLOCK) -> None:
        if qps > 0 and burst < 1:
            raise ValueError(f"burst must be at least 1 for a limited bucket, got {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.monotonic()

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)

    def reserve(self) -> float:
        """Take one token, possibly in advance; return the seconds until it may be used (0 if now)."""
        if self.unlimited:
            return 0.0
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def try_accept(self) -> bool:
        """Take one token only if one is available now."""
        if self.unlimited:
            return True
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def wait(self) -> None:
        """Take one token and sleep until it is valid. A cancelled wait does not give the token back."""
        delay = self.reserve()
        if delay > 0:
            await self._clock.sleep(delay)


class RateLimiter(Protocol):
    """client-go's ``RateLimiter``: how long an item waits before its next retry."""

    def when(self, item: Hashable) -> float:
        """Record one more failure of ``item`` and return the seconds to wait before retrying it."""
        ...

    def forget(self, item: Hashable) -> None:
        """Stop tracking ``item`` (it succeeded): its next failure starts from scratch."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """How many times ``item`` has been retried since it was last forgotten."""
        ...


class ItemExponentialRateLimiter:
    """Per-item exponential backoff: ``base * 2**failures`` seconds, at most ``cap``."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 1024:  # 2.0 ** 1024 overflows a float; the delay is long past any sane cap anyway
            return self.cap
        return min(self.cap, self.base * 2.0**exp)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """One token bucket shared by every item: bounds the overall retry rate, not per item."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket

    def when(self, item: Hashable) -> float:
        return self.bucket.reserve()

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """Asks every limiter (so each records the failure) and waits for the longest delay."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max([limiter.when(item) for limiter in self.limiters])

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter:
    """client-go's default: 5ms..1000s per-item backoff, and 10 qps / 100 burst overall."""
    return MaxOfRateLimiter(
        ItemExponentialRateLimiter(0.005, 1000.0),
        BucketRateLimiter(TokenBucket(10, 100, clock)),
    )
