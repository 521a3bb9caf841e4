"""The work queue's client-go guarantees: fair, stingy, exclusive, delaying, rate limited, draining."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.clock import FakeClock
from machinery.ratelimit import ItemExponentialRateLimiter
from machinery.workqueue import QueueShutDown, WorkQueue


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (the delaying task needs a few loop iterations to move an item)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def delay_tasks(q: WorkQueue) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"workqueue {q.name} delays" and not t.done()]


async def drain_now(q: WorkQueue) -> list:
    """Everything queued right now, in order, each marked done."""
    items = []
    while len(q):
        assert len(items) < 100, f"the queue keeps handing out items: {items[:10]}..."
        item = await q.get()
        q.done(item)
        items.append(item)
    return items


# --- the basic queue ------------------------------------------------------------------------------


async def test_items_come_out_in_the_order_they_were_added():
    q = WorkQueue(clock=FakeClock())
    for item in ["c", "a", "b", "d"]:
        q.add(item)
    assert len(q) == q.depth == 4
    assert await drain_now(q) == ["c", "a", "b", "d"]
    assert len(q) == 0


async def test_an_item_added_twice_before_processing_is_handed_out_once():
    q = WorkQueue(clock=FakeClock())
    q.add("x")
    q.add("y")
    q.add("x")
    assert len(q) == 2
    assert q.adds_total == 2
    assert await drain_now(q) == ["x", "y"]  # x keeps its first place


async def test_an_item_added_while_processing_is_queued_again_on_done():
    q = WorkQueue(clock=FakeClock())
    q.add("x")
    assert await q.get() == "x"
    q.add("x")
    q.add("x")
    assert len(q) == 0  # not handed to anyone else while being processed
    q.add("y")
    assert await q.get() == "y"
    q.done("x")
    assert len(q) == 1
    assert await q.get() == "x"
    q.done("x")
    q.done("y")
    assert len(q) == 0


async def test_two_workers_never_process_the_same_item_at_once():
    q = WorkQueue(clock=FakeClock())
    active: set[str] = set()
    processed: list[str] = []

    async def worker() -> None:
        while True:
            try:
                item = await q.get()
            except QueueShutDown:
                return
            assert item not in active
            active.add(item)
            await settle(3)  # while we "work", the other worker runs and more adds arrive
            active.discard(item)
            processed.append(item)
            q.done(item)

    workers = [asyncio.create_task(worker()) for _ in range(2)]
    q.add("x")
    await asyncio.sleep(0)
    q.add("x")  # x is being processed by one worker: the other must not get it
    await settle(1)
    q.add("x")
    await q.shutdown_with_drain()
    await asyncio.wait_for(asyncio.gather(*workers), 1)
    assert processed == ["x", "x"]


async def test_a_waiting_get_returns_when_an_item_is_added():
    q = WorkQueue(clock=FakeClock())
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_a_cancelled_getter_does_not_swallow_the_item_it_was_woken_for():
    q = WorkQueue(clock=FakeClock())
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await settle()
    q.add("x")  # wakes the first getter...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "x"
    assert first.cancelled()


async def test_done_reports_work_duration_and_longest_processing():
    clock = FakeClock()
    durations: list[float] = []
    q = WorkQueue(clock=clock, on_work_duration=durations.append)
    q.add("a")
    q.add("b")
    assert q.longest_processing_seconds() == 0
    await q.get()
    clock.advance(2)
    await q.get()
    clock.advance(3)
    assert q.longest_processing_seconds() == 5
    q.done("b")
    q.done("a")
    q.done("a")  # not being processed any more: ignored
    assert durations == [3, 5]
    assert q.longest_processing_seconds() == 0


# --- shutting down --------------------------------------------------------------------------------


async def test_shutdown_wakes_waiting_getters_and_ignores_adds():
    q = WorkQueue(clock=FakeClock())
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    assert q.shutting_down
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 1)
    assert all(isinstance(r, QueueShutDown) for r in results)
    q.add("x")
    q.add_after("y", 1)
    q.add_rate_limited("z")
    assert len(q) == 0 and q.retries_total == 0
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(q.get(), 1)


async def test_items_queued_before_shutdown_are_still_handed_out():
    q = WorkQueue(clock=FakeClock())
    q.add("a")
    q.add("b")
    q.shutdown()
    assert await q.get() == "a"
    assert await q.get() == "b"
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_with_drain_waits_for_items_in_flight():
    q = WorkQueue(clock=FakeClock())
    q.add("a")
    q.add("b")
    a = await q.get()
    b = await q.get()
    drain = asyncio.create_task(q.shutdown_with_drain())
    await settle()
    assert not drain.done()
    q.add("c")  # no longer accepted
    q.done(a)
    await settle()
    assert not drain.done()  # b is still being processed
    q.done(b)
    await asyncio.wait_for(drain, 1)
    assert len(q) == 0
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_with_drain_returns_at_once_when_idle_and_shutdown_ends_a_drain():
    q = WorkQueue(clock=FakeClock())
    await asyncio.wait_for(q.shutdown_with_drain(), 1)

    q = WorkQueue(clock=FakeClock())
    q.add("a")
    await q.get()
    drain = asyncio.create_task(q.shutdown_with_drain())
    await settle()
    assert not drain.done()
    q.shutdown()
    await asyncio.wait_for(drain, 1)


# --- delays and rate limiting ---------------------------------------------------------------------


async def test_add_after_fires_only_once_fake_time_passes_the_deadline():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("x", 5)
    await settle()
    assert len(q) == 0 and clock.sleepers == 1
    clock.advance(4.9)
    await settle()
    assert len(q) == 0
    clock.advance(0.1)
    await settle()
    assert len(q) == 1
    assert await q.get() == "x"


async def test_the_earlier_deadline_wins():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("x", 10)
    q.add_after("x", 2)
    q.add_after("y", 1)
    q.add_after("y", 4)  # later than y's pending deadline: ignored
    await settle()
    clock.advance(1)
    await settle()
    assert await drain_now(q) == ["y"]
    clock.advance(1)
    await settle()
    assert await drain_now(q) == ["x"]
    clock.advance(20)  # the superseded deadlines never fire
    await settle()
    assert len(q) == 0


async def test_a_new_earlier_deadline_wakes_the_sleeping_delay_task():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_after("late", 10)
    await settle()  # the delaying task now sleeps until the 10s deadline
    q.add_after("early", 1)
    await settle()
    clock.advance(1)
    await settle()
    assert await drain_now(q) == ["early"]
    clock.advance(9)
    await settle()
    assert await drain_now(q) == ["late"]


async def test_delayed_items_fire_in_deadline_order_through_one_task():
    clock = FakeClock()
    q = WorkQueue("ordered", clock=clock)
    for item, delay in [("c", 3), ("a", 1), ("b", 2)]:
        q.add_after(item, delay)
    q.add_after("now", 0)
    assert len(q) == 1
    await settle()
    assert len(delay_tasks(q)) == 1
    clock.advance(5)
    await settle()
    assert await drain_now(q) == ["now", "a", "b", "c"]
    assert delay_tasks(q) == []  # nothing left to wait for: the task has finished
    q.add_after("d", 1)
    await settle()
    assert len(delay_tasks(q)) == 1
    clock.advance(1)
    await settle()
    assert await drain_now(q) == ["d"]
    assert delay_tasks(q) == []


def test_add_after_outside_a_running_loop_waits_for_the_next_get():
    clock = FakeClock()
    q = WorkQueue("no loop yet", clock=clock)
    q.add_after("x", 1)  # no loop: the delaying task cannot start yet

    async def later() -> str:
        getter = asyncio.create_task(q.get())
        await settle()
        assert len(delay_tasks(q)) == 1
        clock.advance(1)
        return await asyncio.wait_for(getter, 1)

    assert asyncio.run(later()) == "x"


async def test_a_delayed_add_of_a_queued_item_is_deduplicated():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add("x")
    q.add_after("x", 1)
    clock.advance(1)
    await settle()
    assert await drain_now(q) == ["x"]


async def test_shutdown_cancels_the_delaying_task_and_drops_delayed_items():
    clock = FakeClock()
    q = WorkQueue("stopping", clock=clock)
    q.add_after("x", 1)
    await settle()
    assert len(delay_tasks(q)) == 1 and clock.sleepers == 1
    q.shutdown()
    await settle()
    assert delay_tasks(q) == [] and clock.sleepers == 0
    clock.advance(10)
    await settle()
    assert len(q) == 0


async def test_add_rate_limited_backs_off_exponentially_until_forget():
    clock = FakeClock()
    q = WorkQueue(clock=clock, rate_limiter=ItemExponentialRateLimiter(base=1, cap=100))
    for expected_delay in [1, 2, 4]:
        q.add_rate_limited("x")
        await settle()
        clock.advance(expected_delay - 0.5)
        await settle()
        assert len(q) == 0
        clock.advance(0.5)
        await settle()
        assert await drain_now(q) == ["x"]
    assert q.num_requeues("x") == 3 and q.retries_total == 3
    q.forget("x")
    assert q.num_requeues("x") == 0
    q.add_rate_limited("x")
    clock.advance(1)
    await settle()
    assert len(q) == 1


async def test_default_rate_limiter_retries_quickly():
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add_rate_limited("x")
    await settle()
    clock.advance(0.005)
    await settle()
    assert len(q) == 1


# --- many workers, many duplicates ----------------------------------------------------------------


async def test_many_workers_process_every_key_after_its_last_add_and_never_twice_at_once():
    q = WorkQueue("stress", clock=FakeClock())
    rng = random.Random(42)
    tick = itertools.count()
    last_add: dict[int, int] = {}
    last_start: dict[int, int] = {}
    active: set[int] = set()

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            assert key not in active, f"key {key} processed by two workers at once"
            active.add(key)
            last_start[key] = next(tick)
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            active.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(3000):
        key = rng.randrange(1000)
        last_add[key] = next(tick)
        q.add(key)
        if rng.random() < 0.3:
            await asyncio.sleep(0)
    await asyncio.wait_for(q.shutdown_with_drain(), 5)
    await asyncio.wait_for(asyncio.gather(*workers), 5)
    assert len(last_add) > 900
    late = [key for key, added in last_add.items() if last_start.get(key, -1) < added]
    assert late == []


# --- against a model ------------------------------------------------------------------------------

keys = st.integers(0, 4)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), keys),
        st.tuples(st.just("get"), st.just(0)),
        st.tuples(st.just("done"), st.integers(0, 10)),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(operations)
async def test_queue_matches_a_simple_model(ops):
    q = WorkQueue(clock=FakeClock())
    queue: list[int] = []
    dirty: set[int] = set()
    processing: set[int] = set()
    for op, arg in ops:
        if op == "add":
            q.add(arg)
            if arg not in dirty:
                dirty.add(arg)
                if arg not in processing:
                    queue.append(arg)
        elif op == "get" and queue:
            expected = queue.pop(0)
            dirty.discard(expected)
            processing.add(expected)
            assert await q.get() == expected
        elif op == "get":  # nothing queued: a get must wait, and cancelling it must lose nothing
            getter = asyncio.create_task(q.get())
            await asyncio.sleep(0)
            assert not getter.done()
            getter.cancel()
            await asyncio.gather(getter, return_exceptions=True)
        elif processing:
            item = sorted(processing)[arg % len(processing)]
            q.done(item)
            processing.remove(item)
            if item in dirty:
                queue.append(item)
        assert len(q) == len(queue)
    q.shutdown()
    for expected in queue:
        assert await q.get() == expected
    with pytest.raises(QueueShutDown):
        await q.get()
