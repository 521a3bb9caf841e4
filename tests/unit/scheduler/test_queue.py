"""Unit tests for the scheduling queue: ordering, dedup, backoff, event-driven moves, the moveRequestCycle race,
the unschedulable timeout, deletes/updates in every sub-queue, gating, nominations and pop/close.

Time only moves through a FakeClock, so backoff and the five-minute flush are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest

from machinery.clock import FakeClock
from scheduler.framework.interface import ClusterEvent
from scheduler.framework.types import PodInfo, QueuedPodInfo
from scheduler.queue import QueueClosed, SchedulingQueue, event_matches, is_pod_updated

NODE_ADD = ClusterEvent("Node", "Add")
POD_DELETE = ClusterEvent("Pod", "Delete")
PLUGIN_EVENTS = {
    "NodeResourcesFit": [NODE_ADD, POD_DELETE],
    "TaintToleration": [ClusterEvent("Node", "UpdateNodeTaint")],
}


def make_pod(name: str, priority: int = 0, *, labels: dict[str, str] | None = None, gated: bool = False,
             nominated: str = "", phase: str = "Pending") -> dict[str, Any]:
    spec: dict[str, Any] = {"priority": priority, "containers": [{"name": "c", "image": "busybox"}]}
    if gated:
        spec["schedulingGates"] = [{"name": "example.com/wait"}]
    status: dict[str, Any] = {"phase": phase}
    if nominated:
        status["nominatedNodeName"] = nominated
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {}}
    return {"metadata": meta, "spec": spec, "status": status}


def priority_less(a: QueuedPodInfo, b: QueuedPodInfo) -> bool:
    """PrioritySort: higher priority first, then earlier timestamp."""
    pa, pb = a.pod_info.priority, b.pod_info.priority
    return pa > pb if pa != pb else a.timestamp < b.timestamp


def not_gated(pod_info: PodInfo) -> bool:
    return not pod_info.spec.get("schedulingGates")


def make_queue(**kwargs: Any) -> tuple[SchedulingQueue, FakeClock]:
    clock = FakeClock()
    queue = SchedulingQueue(priority_less, clock=clock, pre_enqueue=not_gated, **kwargs)
    queue.set_plugin_events(PLUGIN_EVENTS)
    return queue, clock


async def pop_now(queue: SchedulingQueue) -> QueuedPodInfo:
    return await asyncio.wait_for(queue.pop(), timeout=1.0)


async def fail(queue: SchedulingQueue, name: str, *plugins: str) -> QueuedPodInfo:
    """Pop ``name`` (must be next) and report it unschedulable by ``plugins`` in the same cycle."""
    qpi = await pop_now(queue)
    assert qpi.pod_info.name == name
    qpi.unschedulable_plugins.update(plugins)
    queue.add_unschedulable(qpi, queue.scheduling_cycle)
    queue.done(qpi.pod_info.uid)
    return qpi


def where(queue: SchedulingQueue, name: str) -> str:
    """Which sub-queue holds the pod (peeks at internals to keep assertions exact)."""
    key = f"default/{name}"
    if key in queue._active:
        return "active"
    if key in queue._backoff:
        return "backoff"
    if key in queue._unschedulable:
        return "unschedulable"
    if key in queue._gated:
        return "gated"
    return "none"


async def still_blocked(task: asyncio.Task[Any]) -> bool:
    for _ in range(5):
        await asyncio.sleep(0)
    return not task.done()


async def tick(clock: FakeClock, seconds: int) -> None:
    """Advance one second at a time, letting the queue's run() loop take each step."""
    for _ in range(seconds):
        clock.advance(1)
        for _ in range(3):
            await asyncio.sleep(0)


async def test_pops_by_priority_then_timestamp() -> None:
    queue, clock = make_queue()
    for name, priority in [("low-old", 0), ("high", 100), ("low-new", 0), ("mid", 10)]:
        queue.add(make_pod(name, priority))
        clock.advance(1)
    popped = [(await pop_now(queue)).pod_info.name for _ in range(4)]
    assert popped == ["high", "mid", "low-old", "low-new"]


async def test_pop_counts_attempts_and_cycles_and_clears_plugins() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    qpi = await fail(queue, "a", "NodeResourcesFit")
    assert (qpi.attempts, queue.scheduling_cycle, qpi.initial_attempt_timestamp) == (1, 1, 1000.0)
    queue.move_all_to_active_or_backoff(NODE_ADD)
    clock.advance(1)
    queue.flush_backoff_completed()
    again = await pop_now(queue)
    assert again is qpi
    assert (again.attempts, queue.scheduling_cycle, again.unschedulable_plugins) == (2, 2, set())
    assert again.initial_attempt_timestamp == 1000.0


async def test_add_twice_keeps_one_updated_entry() -> None:
    queue, _ = make_queue()
    queue.add(make_pod("a", labels={"v": "1"}))
    queue.add(make_pod("a", labels={"v": "2"}))
    assert queue.len_active() == 1
    assert (await pop_now(queue)).pod_info.labels == {"v": "2"}
    assert queue.len_active() == 0


async def test_update_in_active_queue_reorders() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a", 1))
    clock.advance(1)
    queue.add(make_pod("b", 2))
    queue.update(make_pod("a", 1), make_pod("a", 5))
    assert (await pop_now(queue)).pod_info.name == "a"


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10), (0, 1)])
def test_backoff_duration_doubles_to_cap(attempts: int, seconds: float) -> None:
    queue, _ = make_queue()
    qpi = QueuedPodInfo(PodInfo(make_pod("a")), timestamp=1000.0, attempts=attempts)
    assert queue.backoff_duration(qpi) == seconds
    assert queue.backoff_expiry(qpi) == 1000.0 + seconds


async def test_backoff_counts_from_last_failure() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    for attempt, wait in [(1, 1), (2, 2), (3, 4)]:
        clock.advance(7)  # time spent before the failure must not count
        qpi = await pop_now(queue)
        assert qpi.attempts == attempt
        queue.requeue_with_backoff(qpi)
        queue.done(qpi.pod_info.uid)
        clock.advance(wait - 0.5)
        queue.flush_backoff_completed()
        assert where(queue, "a") == "backoff"
        clock.advance(0.5)
        queue.flush_backoff_completed()
        assert where(queue, "a") == "active"


@pytest.mark.parametrize(("plugins", "event", "wait", "expected"), [
    (("NodeResourcesFit",), NODE_ADD, 5, "active"),  # registered event, backoff over
    (("NodeResourcesFit",), NODE_ADD, 0, "backoff"),  # registered event, still backing off
    (("NodeResourcesFit",), ClusterEvent("Node", "UpdateNodeTaint"), 5, "unschedulable"),  # unrelated
    (("TaintToleration",), ClusterEvent("Node", "Update"), 5, "active"),  # generic Update covers UpdateNodeTaint
    (("TaintToleration",), NODE_ADD, 5, "unschedulable"),
    (("TaintToleration", "NodeResourcesFit"), POD_DELETE, 5, "active"),  # any rejecting plugin suffices
    ((), ClusterEvent("Storage", "Whatever"), 5, "active"),  # no recorded plugin: always moves
    (("UnknownPlugin",), ClusterEvent("Storage", "Whatever"), 5, "active"),  # no registrations known: all events
    (("NodeResourcesFit",), ClusterEvent("*", "All"), 5, "active"),
])
async def test_move_all_by_event(plugins: tuple[str, ...], event: ClusterEvent, wait: float, expected: str) -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    await fail(queue, "a", *plugins)
    assert where(queue, "a") == "unschedulable"
    clock.advance(wait)
    queue.move_all_to_active_or_backoff(event)
    assert where(queue, "a") == expected


async def test_move_all_respects_pre_check() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    clock.advance(1)
    queue.add(make_pod("b"))
    await fail(queue, "a", "NodeResourcesFit")
    await fail(queue, "b", "NodeResourcesFit")
    clock.advance(5)
    queue.move_all_to_active_or_backoff(NODE_ADD, pre_check=lambda info: info.name == "b")
    assert (where(queue, "a"), where(queue, "b")) == ("unschedulable", "active")


async def test_assigned_pod_events_move_interested_pods() -> None:
    queue, clock = make_queue()
    queue.set_plugin_events({**PLUGIN_EVENTS, "InterPodAffinity": [ClusterEvent("Pod", "Add")],
                             "PodTopologySpread": [ClusterEvent("Pod", "UpdatePodLabel")]})
    for name in ("affinity", "spread", "fit"):
        queue.add(make_pod(name))
        clock.advance(1)
    await fail(queue, "affinity", "InterPodAffinity")
    await fail(queue, "spread", "PodTopologySpread")
    await fail(queue, "fit", "NodeResourcesFit")
    clock.advance(5)
    queue.assigned_pod_added(make_pod("bound"))
    assert [where(queue, n) for n in ("affinity", "spread", "fit")] == ["active", "unschedulable", "unschedulable"]
    queue.assigned_pod_updated(make_pod("bound"), make_pod("bound", labels={"x": "y"}))
    assert [where(queue, n) for n in ("spread", "fit")] == ["active", "unschedulable"]


async def test_move_request_during_cycle_sends_pod_to_backoff() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    qpi = await pop_now(queue)
    cycle = queue.scheduling_cycle
    queue.move_all_to_active_or_backoff(NODE_ADD)  # arrives while "a" is being scheduled
    qpi.unschedulable_plugins.add("NodeResourcesFit")
    queue.add_unschedulable(qpi, cycle)
    assert where(queue, "a") == "backoff"
    clock.advance(1)
    queue.flush_backoff_completed()
    assert where(queue, "a") == "active"


async def test_move_request_before_cycle_does_not_count() -> None:
    queue, _ = make_queue()
    queue.add(make_pod("a"))
    queue.move_all_to_active_or_backoff(NODE_ADD)
    await fail(queue, "a", "NodeResourcesFit")
    assert where(queue, "a") == "unschedulable"


async def test_unschedulable_pods_retried_after_five_minutes() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    runner = asyncio.create_task(queue.run())
    await asyncio.sleep(0)
    await fail(queue, "a", "TaintToleration")
    await tick(clock, 299)
    assert where(queue, "a") == "unschedulable"
    await tick(clock, 31)  # next 30-second flush after 5 minutes have passed
    assert where(queue, "a") == "active"
    queue.close()
    runner.cancel()


async def test_run_flushes_completed_backoffs() -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    runner = asyncio.create_task(queue.run())
    await asyncio.sleep(0)
    qpi = await pop_now(queue)
    queue.requeue_with_backoff(qpi)
    waiter = asyncio.create_task(queue.pop())
    assert await still_blocked(waiter)
    await tick(clock, 1)
    assert (await asyncio.wait_for(waiter, 1.0)).attempts == 2
    queue.close()
    await tick(clock, 1)
    await asyncio.wait_for(runner, 1.0)


@pytest.mark.parametrize("sub_queue", ["active", "backoff", "unschedulable", "gated"])
async def test_delete_removes_from_any_sub_queue(sub_queue: str) -> None:
    queue, _ = make_queue()
    pod = make_pod("a", gated=sub_queue == "gated")
    queue.add(pod)
    if sub_queue == "backoff":
        queue.requeue_with_backoff(await pop_now(queue))
    elif sub_queue == "unschedulable":
        await fail(queue, "a", "NodeResourcesFit")
    assert where(queue, "a") == sub_queue
    queue.delete(pod)
    assert where(queue, "a") == "none"
    assert queue.pending_summary() == {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0}


async def test_pod_deleted_while_in_flight_is_not_requeued() -> None:
    queue, _ = make_queue()
    pod = make_pod("a")
    queue.add(pod)
    qpi = await pop_now(queue)
    queue.delete(pod)
    queue.add_unschedulable(qpi, queue.scheduling_cycle)
    queue.requeue_with_backoff(qpi)
    assert where(queue, "a") == "none"


async def test_pod_updated_while_in_flight_is_retried_with_new_version() -> None:
    queue, _ = make_queue()
    queue.add(make_pod("a"))
    qpi = await pop_now(queue)
    queue.update(make_pod("a"), make_pod("a", labels={"fixed": "yes"}))
    assert qpi.pod_info.labels == {}  # the running cycle keeps its version
    queue.add(make_pod("a", labels={"fixed": "yes"}))  # a relist re-add does not duplicate it
    assert queue.len_active() == 0
    queue.add_unschedulable(qpi, queue.scheduling_cycle)
    assert where(queue, "a") == "backoff"
    assert qpi.pod_info.labels == {"fixed": "yes"}


@pytest.mark.parametrize(("new", "expected"), [
    (make_pod("a", labels={"app": "web"}), "active"),  # labels changed
    (make_pod("a", 7), "active"),  # spec changed
    (make_pod("a", phase="Unknown"), "unschedulable"),  # status only
])
async def test_update_of_unschedulable_pod(new: dict[str, Any], expected: str) -> None:
    queue, clock = make_queue()
    queue.add(make_pod("a"))
    await fail(queue, "a", "NodeResourcesFit")
    clock.advance(5)
    queue.update(make_pod("a"), new)
    assert where(queue, "a") == expected
    assert queue._find("default/a").pod is new  # updated in place either way


async def test_update_of_unschedulable_pod_still_backing_off_goes_to_backoff() -> None:
    queue, _ = make_queue()
    queue.add(make_pod("a"))
    await fail(queue, "a", "NodeResourcesFit")
    queue.update(make_pod("a"), make_pod("a", labels={"app": "web"}))
    assert where(queue, "a") == "backoff"


async def test_pop_blocks_until_add() -> None:
    queue, _ = make_queue()
    waiter = asyncio.create_task(queue.pop())
    assert await still_blocked(waiter)
    queue.add(make_pod("a"))
    assert (await asyncio.wait_for(waiter, 1.0)).pod_info.name == "a"


async def test_close_wakes_pop() -> None:
    queue, _ = make_queue()
    waiters = [asyncio.create_task(queue.pop()) for _ in range(2)]
    assert await still_blocked(waiters[0])
    queue.close()
    for waiter in waiters:
        with pytest.raises(QueueClosed):
            await asyncio.wait_for(waiter, 1.0)
    with pytest.raises(QueueClosed):
        await queue.pop()


async def test_gated_pod_pops_only_after_update_lifts_gate() -> None:
    queue, _ = make_queue()
    queue.add(make_pod("a", gated=True))
    assert (queue.len_active(), queue.len_gated()) == (0, 1)
    waiter = asyncio.create_task(queue.pop())
    assert await still_blocked(waiter)
    queue.update(make_pod("a", gated=True), make_pod("a", gated=True, labels={"x": "y"}))
    assert await still_blocked(waiter)
    queue.update(make_pod("a", gated=True), make_pod("a"))
    assert (await asyncio.wait_for(waiter, 1.0)).pod_info.name == "a"
    assert queue.len_gated() == 0


def test_nominated_pods() -> None:
    queue, _ = make_queue()
    queue.add(make_pod("from-status", nominated="node-1"))
    victim_free = PodInfo(make_pod("preemptor"))
    queue.add_nominated(victim_free, "node-1")
    assert sorted(p.name for p in queue.nominated_pods_for_node("node-1")) == ["from-status", "preemptor"]
    queue.add_nominated(victim_free, "node-2")  # re-nominated elsewhere
    assert [p.name for p in queue.nominated_pods_for_node("node-2")] == ["preemptor"]
    queue.add(make_pod("preemptor"))
    queue.update(make_pod("preemptor"), make_pod("preemptor", labels={"x": "y"}))  # keeps in-memory nomination
    assert [p.labels for p in queue.nominated_pods_for_node("node-2")] == [{"x": "y"}]
    queue.update(make_pod("from-status", nominated="node-1"), make_pod("from-status"))  # cleared in the API
    queue.delete(make_pod("preemptor"))
    assert queue.nominated_pods_for_node("node-1") == queue.nominated_pods_for_node("node-2") == []
    queue.add_nominated(victim_free, "node-3")
    queue.delete_nominated(victim_free.uid)
    assert queue.nominated_pods_for_node("node-3") == []


async def test_pending_summary_counts() -> None:
    queue, _ = make_queue()
    for name in ("a", "b", "c"):
        queue.add(make_pod(name))
    queue.add(make_pod("g", gated=True))
    await fail(queue, "a", "NodeResourcesFit")
    queue.requeue_with_backoff(await pop_now(queue))
    assert queue.pending_summary() == {"active": 1, "backoff": 1, "unschedulable": 1, "gated": 1}
    assert (queue.len_active(), queue.len_backoff(), queue.len_unschedulable()) == (1, 1, 1)


async def test_heap_stays_ordered_under_random_updates_and_deletes() -> None:
    queue, clock = make_queue()
    rng = random.Random(7)
    pods = {f"p{i}": rng.randint(0, 5) for i in range(60)}
    for name, priority in pods.items():
        queue.add(make_pod(name, priority))
        clock.advance(rng.random())
    for name in rng.sample(sorted(pods), 20):
        queue.delete(make_pod(name))
        del pods[name]
    for name in rng.sample(sorted(pods), 15):
        pods[name] = rng.randint(0, 5)
        queue.update(make_pod(name), make_pod(name, pods[name]))
    popped = [await pop_now(queue) for _ in range(len(pods))]
    assert sorted(q.pod_info.name for q in popped) == sorted(pods)
    assert all(not priority_less(b, a) for a, b in itertools.pairwise(popped))


@pytest.mark.parametrize(("registered", "event", "matches"), [
    (ClusterEvent("Node", "Add"), ClusterEvent("Node", "Add"), True),
    (ClusterEvent("Node", "Add"), ClusterEvent("Pod", "Add"), False),
    (ClusterEvent("Node", "Update"), ClusterEvent("Node", "UpdateNodeLabel"), True),
    (ClusterEvent("Node", "UpdateNodeLabel"), ClusterEvent("Node", "Update"), True),
    (ClusterEvent("Node", "UpdateNodeLabel"), ClusterEvent("Node", "UpdateNodeTaint"), False),
    (ClusterEvent("Node", "All"), ClusterEvent("Node", "Delete"), True),
    (ClusterEvent("*", "All"), ClusterEvent("PersistentVolume", "Add"), True),
    (ClusterEvent("Pod", "Delete"), ClusterEvent("*", "UnschedulableTimeout"), False),
])
def test_event_matches(registered: ClusterEvent, event: ClusterEvent, matches: bool) -> None:
    assert event_matches(registered, event) is matches


def test_is_pod_updated_ignores_status_and_bookkeeping() -> None:
    old = make_pod("a")
    bumped = make_pod("a", phase="Failed")
    bumped["metadata"].update(resourceVersion="9", generation=3, managedFields=[{}], finalizers=["x"])
    assert not is_pod_updated(old, bumped)
    assert is_pod_updated(old, make_pod("a", labels={"k": "v"}))
    annotated = make_pod("a")
    annotated["metadata"]["annotations"] = {"k": "v"}
    assert is_pod_updated(old, annotated)


async def test_activate_moves_held_pods_to_active_rerunning_pre_enqueue():
    from machinery.clock import FakeClock
    from scheduler.queue import SchedulingQueue
    allowed: set[str] = set()
    queue = SchedulingQueue(lambda a, b: a.timestamp < b.timestamp, clock=FakeClock(),
                            pre_enqueue=lambda info: info.name in allowed)
    held = {"metadata": {"name": "held", "namespace": "ns", "uid": "u1"}, "spec": {}}
    queue.add(held)
    assert queue.len_gated() == 1 and queue.len_active() == 0
    queue.activate([held])  # still refused by PreEnqueue: stays gated
    assert queue.len_gated() == 1 and queue.len_active() == 0
    allowed.add("held")
    queue.activate([held, {"metadata": {"name": "unknown", "namespace": "ns", "uid": "u2"}}])
    assert queue.len_gated() == 0 and queue.len_active() == 1
    assert (await queue.pop()).pod_info.name == "held"
