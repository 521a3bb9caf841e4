"""The scheduling loop's informer handlers and failure paths (Scheduler, without an API server)."""

from __future__ import annotations

import asyncio

from machinery.clock import FakeClock
from machinery.events import EventRecorder
from machinery.informer import SharedInformerFactory
from scheduler.cache import SchedulerCache
from scheduler.config import Profile
from scheduler.framework import Handle, PodInfo
from scheduler.framework.runtime import Framework
from scheduler.queue import SchedulingQueue
from scheduler.scheduler import Scheduler


class FakeClient:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict]] = []

    async def patch(self, resource, name, patch, namespace=None, **_kwargs):
        self.patches.append((name, patch))
        return {}

    async def create(self, resource, obj, namespace=None, **_kwargs):
        return obj


class Binder:
    NAME = "Binder"

    def __init__(self, args, handle):
        self.bound: list[tuple[str, str]] = []

    async def bind(self, state, pod_info, node_name):
        self.bound.append((pod_info.key, node_name))
        return None


class BrokenReserve:
    NAME = "BrokenReserve"

    def __init__(self, args, handle):
        pass

    def reserve(self, state, pod_info, node_name):
        raise KeyError("boom")

    def unreserve(self, state, pod_info, node_name):
        pass


class BrokenPreEnqueue:
    NAME = "BrokenPreEnqueue"

    def __init__(self, args, handle):
        pass

    def pre_enqueue(self, pod_info):
        raise TypeError("bad spec")


REGISTRY = {cls.NAME: cls for cls in (Binder, BrokenReserve, BrokenPreEnqueue)}


def node(name: str, cpu: str = "4") -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}}


def pod(name: str = "p", uid: str = "uid-p", rv: str = "1", node_name: str = "", cpu: str = "1") -> dict:
    spec: dict = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": rv},
            "spec": spec, "status": {"phase": "Pending"}}


def build(plugins: list[str]) -> tuple[Scheduler, Framework]:
    clock = FakeClock()
    client = FakeClient()
    informers = SharedInformerFactory(client, clock=clock)  # type: ignore[arg-type]
    cache = SchedulerCache()
    handle = Handle(client=client, informers=informers, clock=clock, snapshot=cache.snapshot, waiting_pods={})
    profile = Profile()
    profile.multi_point.enabled = [(name, 0) for name in plugins]
    framework = Framework(profile, REGISTRY, handle)

    def pre_enqueue(pod_info: PodInfo) -> bool:
        return framework.pre_enqueue(pod_info) is None

    queue = SchedulingQueue(framework.less, clock=clock, pre_enqueue=pre_enqueue)
    recorder = EventRecorder(client, "default-scheduler", clock=clock)  # type: ignore[arg-type]
    scheduler = Scheduler(client, informers, {"default-scheduler": framework}, queue, cache, recorder,  # type: ignore[arg-type]
                          clock=clock)
    return scheduler, framework


def requested_cpu(scheduler: Scheduler, name: str) -> int:
    info = scheduler.cache.snapshot().get(name)
    assert info is not None
    return info.requested.milli_cpu


async def schedule_and_bind(scheduler: Scheduler) -> None:
    queued = await scheduler.queue.pop()
    await scheduler.schedule_one(queued)
    await asyncio.gather(*scheduler._binding_tasks)


async def test_a_reserve_plugin_that_raises_does_not_stop_scheduling_or_leak_the_assumption():
    scheduler, _ = build(["BrokenReserve", "Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1")})
    scheduler.pods._apply({"type": "ADDED", "object": pod()})
    queued = await scheduler.queue.pop()
    await scheduler.schedule_one(queued)  # must not raise
    assert requested_cpu(scheduler, "n1") == 0 and not scheduler.cache.is_assumed("uid-p")
    assert scheduler.queue.len_backoff() + scheduler.queue.len_active() == 1  # retried, not lost
    assert "uid-p" not in scheduler.queue._in_flight
    _, patch = scheduler.client.patches[-1]
    assert patch["status"]["conditions"][0]["reason"] == "SchedulerError"


async def test_a_pre_enqueue_plugin_that_raises_gates_the_pod_instead_of_breaking_the_queue():
    scheduler, _ = build(["BrokenPreEnqueue", "Binder"])
    scheduler.pods._apply({"type": "ADDED", "object": pod()})
    assert scheduler.queue.len_gated() == 1 and scheduler.queue.len_active() == 0


async def test_a_stale_delete_after_a_relist_frees_the_assumed_pod():
    scheduler, framework = build(["Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1")})
    scheduler.pods._apply({"type": "ADDED", "object": pod()})
    await schedule_and_bind(scheduler)
    assert framework.plugins["Binder"].bound == [("default/p", "n1")]
    assert requested_cpu(scheduler, "n1") == 1000
    # the watch broke before the bound version arrived, and the pod was deleted meanwhile: the relist's
    # delete carries the last version the informer saw, without nodeName
    scheduler.pods._replace([])
    assert requested_cpu(scheduler, "n1") == 0 and scheduler.cache.pod_count() == 0


async def test_a_late_update_of_the_unbound_version_does_not_schedule_the_pod_twice():
    scheduler, framework = build(["Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1")})
    scheduler.pods._apply({"type": "ADDED", "object": pod()})
    await schedule_and_bind(scheduler)
    # an update committed just before the binding reaches the informer after the bind call returned
    late = pod(rv="2")
    late["metadata"]["labels"] = {"app": "x"}
    scheduler.pods._apply({"type": "MODIFIED", "object": late})
    assert scheduler.queue.len_active() == 0 and scheduler.queue.len_backoff() == 0
    # and should it be queued anyway, popping it is harmless
    scheduler.queue.add(late)
    queued = await scheduler.queue.pop()
    await scheduler.schedule_one(queued)
    assert framework.plugins["Binder"].bound == [("default/p", "n1")]
    assert requested_cpu(scheduler, "n1") == 1000


async def test_a_relist_merging_delete_and_recreate_into_an_update_frees_the_old_pod():
    scheduler, _ = build(["Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1")})
    scheduler.pods._apply({"type": "ADDED", "object": pod(node_name="n1")})
    assert requested_cpu(scheduler, "n1") == 1000
    scheduler.pods._replace([pod(uid="uid-p2", rv="5")])  # same name, new pod, not bound yet
    assert requested_cpu(scheduler, "n1") == 0
    assert scheduler.queue.len_active() == 1


async def test_one_failing_cycle_does_not_end_the_loop(monkeypatch):
    scheduler, framework = build(["Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1")})
    scheduler.pods._apply({"type": "ADDED", "object": pod("a", "uid-a")})
    scheduler.pods._apply({"type": "ADDED", "object": pod("b", "uid-b")})
    calls = []
    original = scheduler.schedule_one

    async def flaky(queued):
        calls.append(queued.pod_info.key)
        if len(calls) == 1:
            raise RuntimeError("unexpected")
        await original(queued)

    monkeypatch.setattr(scheduler, "schedule_one", flaky)
    scheduler.informers.wait_for_sync = _synced  # type: ignore[method-assign]
    task = asyncio.create_task(scheduler.run())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()
    assert len(framework.plugins["Binder"].bound) == 1
    assert scheduler.queue.len_backoff() == 1  # the failed pod is retried later
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_long_queue_leaves_the_event_loop_turns_while_it_is_scheduled(monkeypatch):
    scheduler, framework = build(["Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1", cpu="100")})
    for i in range(40):
        scheduler.pods._apply({"type": "ADDED", "object": pod(f"p{i}", f"uid-{i}", cpu="100m")})
    turns = 0
    seen: list[tuple[int, int]] = []  # (loop turns, pods bound) when each cycle starts
    original = scheduler.schedule_one

    all_seen = asyncio.Event()

    async def timed(queued):
        seen.append((turns, len(framework.plugins["Binder"].bound)))
        if len(seen) == 40:
            all_seen.set()
        scheduler.clock.advance(0.02)  # a scheduling cycle of 20 ms
        await original(queued)

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(scheduler, "schedule_one", timed)
    scheduler.informers.wait_for_sync = _synced  # type: ignore[method-assign]
    ticking = asyncio.create_task(ticker())
    task = asyncio.create_task(scheduler.run())
    await asyncio.wait_for(all_seen.wait(), 5)
    # every 50 ms of cycles (3 cycles here) the loop turned: other tasks ran and bindings went out meanwhile
    assert len({t for t, _ in seen}) >= 12
    assert seen[20][1] >= 15
    for t in (task, ticking):
        t.cancel()
    await asyncio.gather(task, ticking, return_exceptions=True)


async def _synced(*_args) -> None:
    return None



async def test_an_assumed_pod_is_not_also_counted_as_nominated_and_a_failure_restores_the_nomination():
    scheduler, _ = build(["BrokenReserve", "Binder"])
    scheduler.nodes._apply({"type": "ADDED", "object": node("n1")})
    nominated = pod()
    nominated["status"]["nominatedNodeName"] = "n1"
    scheduler.pods._apply({"type": "ADDED", "object": nominated})
    assert scheduler.queue.nominated_node("uid-p") == "n1"
    seen_during_reserve: list[str | None] = []
    broken = scheduler.profiles["default-scheduler"].plugins["BrokenReserve"]

    def reserve(state, pod_info, node_name):
        seen_during_reserve.append(scheduler.queue.nominated_node(pod_info.uid))
        raise KeyError("boom")
    broken.reserve = reserve
    await scheduler.schedule_one(await scheduler.queue.pop())
    assert seen_during_reserve == [None]  # assumed on n1: not counted a second time as nominated there
    assert scheduler.queue.nominated_node("uid-p") == "n1"  # restored after the failure
