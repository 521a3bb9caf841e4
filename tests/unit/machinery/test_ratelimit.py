"""Token bucket and work queue rate limiters, driven by a FakeClock."""

from __future__ import annotations

import asyncio

import pytest

from machinery.clock import FakeClock
from machinery.ratelimit import (
    BucketRateLimiter,
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    TokenBucket,
    default_controller_rate_limiter,
)

# --- token bucket ---------------------------------------------------------------------------------


def test_bucket_gives_burst_at_once_then_spaces_by_one_over_qps():
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    # Further reservations go into debt: each waits 1/qps longer than the previous one.
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_with_time_but_never_beyond_burst():
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=2, clock=clock)
    assert bucket.reserve() == 0 and bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)  # debt of one token
    clock.advance(0.2)  # pays the debt and earns one token
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)
    clock.advance(3600)
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_try_accept_only_takes_available_tokens():
    clock = FakeClock()
    bucket = TokenBucket(qps=2, burst=2, clock=clock)
    assert [bucket.try_accept() for _ in range(3)] == [True, True, False]
    clock.advance(0.25)  # half a token
    assert not bucket.try_accept()
    clock.advance(0.25)
    assert bucket.try_accept()
    assert not bucket.try_accept()
    # A refused try_accept took nothing: the next reservation waits for exactly one token.
    assert bucket.reserve() == pytest.approx(0.5)
    clock.advance(0.5)
    assert not bucket.try_accept()  # the token earned meanwhile paid the debt


def test_unlimited_bucket_never_waits():
    bucket = TokenBucket(qps=0, burst=0, clock=FakeClock())
    assert all(bucket.reserve() == 0 for _ in range(1000))
    assert all(bucket.try_accept() for _ in range(1000))


def test_limited_bucket_needs_a_burst():
    with pytest.raises(ValueError):
        TokenBucket(qps=1, burst=0)


async def test_wait_sleeps_on_the_clock_only_when_out_of_tokens():
    clock = FakeClock()
    bucket = TokenBucket(qps=4, burst=1, clock=clock)
    await asyncio.wait_for(bucket.wait(), 1)  # the burst token: no sleep
    waiter = asyncio.create_task(bucket.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done() and clock.sleepers == 1
    clock.advance(0.2)
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(0.1)
    await asyncio.wait_for(waiter, 1)


# --- per-item exponential backoff -----------------------------------------------------------------


def test_exponential_backoff_doubles_per_failure_and_is_capped():
    limiter = ItemExponentialRateLimiter(base=0.005, cap=1000.0)
    delays = [limiter.when("a") for _ in range(20)]
    assert delays[:5] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert delays[17] == pytest.approx(0.005 * 2**17)  # 655.36s, still under the cap
    assert delays[18:] == [1000.0, 1000.0]
    assert limiter.num_requeues("a") == 20


def test_exponential_backoff_is_per_item_and_reset_by_forget():
    limiter = ItemExponentialRateLimiter(base=1, cap=60)
    assert [limiter.when("a") for _ in range(3)] == [1, 2, 4]
    assert limiter.when("b") == 1
    assert limiter.num_requeues("a") == 3 and limiter.num_requeues("b") == 1
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 1
    assert limiter.when("b") == 2


def test_exponential_backoff_survives_huge_failure_counts():
    limiter = ItemExponentialRateLimiter(base=0.005, cap=1000.0)
    for _ in range(1100):
        delay = limiter.when("x")
    assert delay == 1000.0


# --- bucket, max-of and the default controller limiter --------------------------------------------


def test_bucket_limiter_is_shared_by_all_items():
    clock = FakeClock()
    limiter = BucketRateLimiter(TokenBucket(qps=10, burst=2, clock=clock))
    assert [limiter.when(item) for item in "abcd"] == pytest.approx([0, 0, 0.1, 0.2])
    assert limiter.num_requeues("a") == 0
    limiter.forget("a")  # no per-item state to reset
    assert limiter.when("a") == pytest.approx(0.3)


def test_max_of_takes_the_longest_delay_and_asks_every_limiter():
    clock = FakeClock()
    fast = ItemExponentialRateLimiter(base=0.001, cap=10)
    slow = ItemExponentialRateLimiter(base=1, cap=10)
    limiter = MaxOfRateLimiter(fast, BucketRateLimiter(TokenBucket(10, 1, clock)), slow)
    assert limiter.when("a") == 1
    assert limiter.when("a") == 2
    assert fast.num_requeues("a") == 2 and slow.num_requeues("a") == 2
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert fast.num_requeues("a") == 0 and slow.num_requeues("a") == 0
    with pytest.raises(ValueError):
        MaxOfRateLimiter()


def test_default_controller_limiter_is_max_of_backoff_and_overall_bucket():
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)
    # One failure each of 100 items: the burst covers them, so the 5ms backoff decides.
    assert all(limiter.when(i) == pytest.approx(0.005) for i in range(100))
    # Bucket exhausted: 10 qps overall now dominates a first failure's 5ms.
    assert limiter.when(100) == pytest.approx(0.1)
    assert limiter.when(101) == pytest.approx(0.2)
    clock.advance(60)  # bucket full again
    # Repeated failures of one item: the per-item backoff dominates once it exceeds the bucket's.
    delays = [limiter.when("x") for _ in range(12)]
    assert delays == pytest.approx([0.005 * 2**n for n in range(12)])
    assert limiter.num_requeues("x") == 12
    limiter.forget("x")
    assert limiter.num_requeues("x") == 0
    assert limiter.when("x") == pytest.approx(0.005)
