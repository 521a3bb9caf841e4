"""GangScheduling with the real framework runtime (Permit waiting room, WaitingPod timers on a FakeClock)
and real informer stores: PreEnqueue holds, Permit waits until minCount, the last member releases the
gang, timeouts and Unreserve reject the whole gang, and pods without a gang are never touched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from machinery.cache import Indexer
from machinery.client import PODS
from machinery.clock import FakeClock
from scheduler.config import Profile
from scheduler.framework import ClusterEvent, CycleState, Handle, PodInfo
from scheduler.framework.runtime import Framework
from scheduler.framework.status import Code
from scheduler.plugins.gangscheduling import WORKLOADS, GangKey, GangScheduling, gang_key, permit_timeout


class FakeInformer:
    """A real store; ``add`` stores an object and tells the add handlers, as the informer does."""

    def __init__(self) -> None:
        self.store = Indexer()
        self.on_add: list = []

    def add_event_handler(self, on_add=None, on_update=None, on_delete=None) -> None:
        if on_add is not None:
            self.on_add.append(on_add)

    def add(self, obj: dict) -> None:
        self.store.upsert(obj)
        for handler in self.on_add:
            handler(obj)


class FakeInformers:
    """What the plugin uses of SharedInformerFactory: ``informer(resource)``."""

    def __init__(self) -> None:
        self._informers: dict[Any, FakeInformer] = {}

    def informer(self, resource) -> FakeInformer:
        return self._informers.setdefault(resource, FakeInformer())


class Binder:
    NAME = "Binder"

    def __init__(self, args, handle):
        pass

    async def bind(self, state, pod_info, node_name):
        return None


REGISTRY = {"GangScheduling": GangScheduling, "Binder": Binder}


def make_framework(args: dict | None = None) -> Framework:
    profile = Profile()
    profile.multi_point.enabled = [("GangScheduling", 0), ("Binder", 0)]
    profile.plugin_args = {"GangScheduling": args} if args is not None else {}
    handle = Handle(client=None, informers=FakeInformers(), clock=FakeClock())
    return Framework(profile, REGISTRY, handle)


def gang_plugin(fwk: Framework) -> GangScheduling:
    return fwk.plugins["GangScheduling"]


def pods_store(fwk: Framework) -> Indexer:
    return fwk.handle.informers.informer(PODS).store


def workload(name: str = "training", ns: str = "ns", **groups: int | None) -> dict:
    """``workload(workers=4, driver=None)``: a gang group per int, a basic group per None."""
    groups = groups or {"workers": 4}
    pod_groups = [{"name": g, "policy": {"basic": {}} if n is None else {"gang": {"minCount": n}}}
                  for g, n in groups.items()]
    return {"apiVersion": "scheduling.k8s.io/v1alpha1", "kind": "Workload",
            "metadata": {"name": name, "namespace": ns}, "spec": {"podGroups": pod_groups}}


def add_workload(fwk: Framework, obj: dict) -> None:
    fwk.handle.informers.informer(WORKLOADS).add(obj)


def record_activations(fwk: Framework) -> list[list[str]]:
    """Install the ``activate`` hook; each call's pod names land in the returned list."""
    calls: list[list[str]] = []
    fwk.handle.extra["activate"] = lambda pods: calls.append(sorted(p["metadata"]["name"] for p in pods))
    return calls


def pod(name: str, workload_name: str | None = "training", group: str = "workers", *, replica: str = "",
        node: str = "", ns: str = "ns", deleting: bool = False, phase: str = "Pending") -> dict:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if workload_name is not None:
        spec["workloadRef"] = {"name": workload_name, "podGroup": group}
        if replica:
            spec["workloadRef"]["podGroupReplicaKey"] = replica
    if node:
        spec["nodeName"] = node
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def add_pods(fwk: Framework, *pods: dict) -> list[PodInfo]:
    for p in pods:
        pods_store(fwk).upsert(p)
    return [PodInfo(p) for p in pods]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def result(task: asyncio.Task):
    """The binding cycle's Permit verdict; fails fast instead of hanging when nobody decides."""
    return await asyncio.wait_for(task, timeout=2)


def finish(fwk: Framework) -> None:
    """Reject whatever still waits, so no WaitingPod timer outlives the test."""
    for waiting in list(fwk.handle.waiting_pods.values()):
        waiting.reject("", "test over")


def start_waiting(fwk: Framework, info: PodInfo) -> asyncio.Task:
    """Permit says WAIT; the binding cycle's wait_on_permit as a task."""
    status = fwk.run_permit(CycleState(), info, "node-1")
    assert status is not None and status.code == Code.WAIT, status
    assert info.uid in fwk.handle.waiting_pods
    return asyncio.create_task(fwk.wait_on_permit(info))


# --- the gang a pod belongs to ----------------------------------------------------------------------


@pytest.mark.parametrize(("ref", "expected"), [
    (None, None),
    ({"name": "w"}, None),
    ({"name": "w", "podGroup": "g"}, GangKey("ns", "w", "g", "")),
    ({"name": "w", "podGroup": "g", "podGroupReplicaKey": "3"}, GangKey("ns", "w", "g", "3")),
])
def test_gang_key(ref, expected):
    p = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"workloadRef": ref} if ref else {}}
    assert gang_key(p) == expected


def test_gang_names_in_messages():
    assert str(GangKey("ns", "training", "workers")) == "training/workers"
    assert str(GangKey("ns", "training", "workers", "2")) == "training/workers/2"


# --- PreEnqueue -----------------------------------------------------------------------------------------


async def test_pods_without_a_gang_are_unaffected():
    fwk = make_framework()
    plain, basic = add_pods(fwk, pod("plain", None), pod("basic", group="driver"))
    add_workload(fwk, workload(workers=4, driver=None))
    plugin = gang_plugin(fwk)
    for info in (plain, basic):
        assert plugin.pre_enqueue(info) is None
        assert fwk.run_permit(CycleState(), info, "node-1") is None
        plugin.unreserve(CycleState(), info, "node-1")
    assert fwk.handle.waiting_pods == {}


async def test_missing_workload_holds_the_pod_at_pre_enqueue():
    fwk = make_framework()
    (info,) = add_pods(fwk, pod("w-0"))
    status = fwk.pre_enqueue(info)
    assert status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("waiting for workload training",) and status.plugin == "GangScheduling"
    add_workload(fwk, workload(workers=1))
    assert fwk.pre_enqueue(info) is None


async def test_missing_pod_group_holds_the_pod():
    fwk = make_framework()
    add_workload(fwk, workload(workers=2))
    (info,) = add_pods(fwk, pod("ps-0", group="ps"))
    status = fwk.pre_enqueue(info)
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("waiting for pod group ps in workload training",)


async def test_fewer_than_min_count_pods_are_held_at_pre_enqueue():
    fwk = make_framework()
    add_workload(fwk, workload(workers=4))
    infos = add_pods(fwk, pod("w-0"), pod("w-1"))
    status = fwk.pre_enqueue(infos[0])
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("waiting for 2 more pods of gang training/workers",)
    # terminating and finished pods, other gangs, other replicas and other namespaces don't count
    add_pods(fwk, pod("w-old", deleting=True), pod("w-done", phase="Succeeded"), pod("x", "other"),
             pod("r1", replica="1"), pod("w-elsewhere", ns="other-ns"))
    assert fwk.pre_enqueue(infos[0]).reasons == ("waiting for 2 more pods of gang training/workers",)
    add_pods(fwk, pod("w-2"))
    assert fwk.pre_enqueue(infos[1]).reasons == ("waiting for 1 more pods of gang training/workers",)
    add_pods(fwk, pod("w-3", node="node-9"))  # bound members count too
    assert all(fwk.pre_enqueue(i) is None for i in infos)


async def test_a_pod_not_yet_in_the_store_counts_itself():
    fwk = make_framework()
    add_workload(fwk, workload(workers=2))
    add_pods(fwk, pod("w-0"))
    assert fwk.pre_enqueue(PodInfo(pod("w-1"))) is None


async def test_replica_keys_are_separate_gangs():
    fwk = make_framework()
    add_workload(fwk, workload(workers=2))
    a0, a1, b0 = add_pods(fwk, pod("a-0", replica="a"), pod("a-1", replica="a"), pod("b-0", replica="b"))
    assert fwk.pre_enqueue(a0) is None
    assert fwk.pre_enqueue(b0).reasons == ("waiting for 1 more pods of gang training/workers/b",)
    wait_a0 = start_waiting(fwk, a0)
    # b-0 is not a member of replica a: it waits on its own, and doesn't complete gang a
    add_pods(fwk, pod("b-1", replica="b"))
    b_wait = start_waiting(fwk, b0)
    assert a1.uid not in fwk.handle.waiting_pods
    assert fwk.run_permit(CycleState(), a1, "node-1") is None
    assert await result(wait_a0) is None
    await settle()
    assert not b_wait.done()
    finish(fwk)
    assert (await result(b_wait)).message() == "test over"


async def test_held_members_are_woken_when_the_gang_is_complete():
    fwk = make_framework()
    calls = record_activations(fwk)
    add_workload(fwk, workload(workers=3))
    w0, w1 = add_pods(fwk, pod("w-0"), pod("w-1"))
    assert fwk.pre_enqueue(w0) is not None and fwk.pre_enqueue(w1) is not None
    assert fwk.pre_enqueue(w1) is not None  # held twice, woken once
    (w2,) = add_pods(fwk, pod("w-2"))
    assert fwk.pre_enqueue(w2) is None
    assert calls == []  # not from inside the queue's call to PreEnqueue: soon after
    await settle()
    assert calls == [["w-0", "w-1"]]
    assert fwk.pre_enqueue(w0) is None and fwk.pre_enqueue(w1) is None
    await settle()
    assert calls == [["w-0", "w-1"]]


async def test_pods_held_for_their_workload_are_woken_when_it_appears():
    fwk = make_framework()
    calls = record_activations(fwk)
    a, b, other = add_pods(fwk, pod("a", group="x"), pod("b", group="y"), pod("o", "other"))
    for info in (a, b, other):
        assert fwk.pre_enqueue(info).reasons[0].startswith("waiting for workload")
    add_workload(fwk, workload(x=1, y=1))
    await settle()
    assert calls == [["a", "b"]]
    add_workload(fwk, workload("unrelated", z=1))
    await settle()
    assert calls == [["a", "b"]]


def test_wake_without_an_event_loop_activates_at_once():
    fwk = make_framework()
    calls = record_activations(fwk)
    add_pods(fwk, pod("w-0"))
    fwk.pre_enqueue(PodInfo(pod("w-0")))
    add_workload(fwk, workload(workers=1))
    assert calls == [["w-0"]]


async def test_no_activate_hook_is_fine():
    fwk = make_framework()
    (w0,) = add_pods(fwk, pod("w-0"))
    assert fwk.pre_enqueue(w0) is not None
    add_workload(fwk, workload(workers=1))
    await settle()
    assert fwk.pre_enqueue(w0) is None


# --- Permit ---------------------------------------------------------------------------------------------


async def test_three_of_four_wait_and_the_fourth_allows_all():
    fwk = make_framework()
    add_workload(fwk, workload(workers=4))
    infos = add_pods(fwk, *(pod(f"w-{i}") for i in range(4)))
    waits = [start_waiting(fwk, info) for info in infos[:3]]
    await settle()
    assert not any(w.done() for w in waits)
    assert set(fwk.handle.waiting_pods) == {i.uid for i in infos[:3]}
    assert fwk.run_permit(CycleState(), infos[3], "node-1") is None
    assert await result(asyncio.gather(*waits)) == [None, None, None]
    assert fwk.handle.waiting_pods == {}


async def test_bound_members_count_at_permit():
    fwk = make_framework()
    add_workload(fwk, workload(workers=3))
    add_pods(fwk, pod("w-0", node="n1"), pod("w-1", node="n2"), pod("w-gone", node="n3", deleting=True))
    (info,) = add_pods(fwk, pod("w-2"))
    assert fwk.run_permit(CycleState(), info, "node-1") is None


async def test_members_let_through_but_not_yet_seen_bound_count():
    fwk = make_framework()
    add_workload(fwk, workload(workers=2))
    w0, w1, w2 = add_pods(fwk, pod("w-0"), pod("w-1"), pod("w-2"))
    wait0 = start_waiting(fwk, w0)
    assert fwk.run_permit(CycleState(), w1, "node-1") is None
    assert await result(wait0) is None
    # w-0 and w-1 are binding (the store still shows them unbound): w-2 need not wait
    assert fwk.run_permit(CycleState(), w2, "node-2") is None
    # w-0 and w-1 failed to bind: they no longer count, so a new member must wait again
    plugin = gang_plugin(fwk)
    for info in (w0, w1, w2):
        plugin.unreserve(CycleState(), info, "node-1")
    (w3,) = add_pods(fwk, pod("w-3"))
    start_waiting(fwk, w3)
    finish(fwk)


async def test_let_through_members_that_were_deleted_stop_counting():
    fwk = make_framework()
    add_workload(fwk, workload(workers=2))
    w0, w1 = add_pods(fwk, pod("w-0"), pod("w-1"))
    wait0 = start_waiting(fwk, w0)
    assert fwk.run_permit(CycleState(), w1, "node-1") is None
    assert await result(wait0) is None
    for info in (w0, w1):
        pods_store(fwk).delete(info.key)  # deleted before the binding showed up
    (w2,) = add_pods(fwk, pod("w-2"))
    start_waiting(fwk, w2)
    assert gang_plugin(fwk)._permitted == {}
    finish(fwk)


async def test_timeout_rejects_and_unreserve_rejects_the_rest_of_the_gang():
    fwk = make_framework({"permitWaitingTimeSeconds": 30})
    add_workload(fwk, workload(workers=4))
    infos = add_pods(fwk, *(pod(f"w-{i}") for i in range(4)))
    first = start_waiting(fwk, infos[0])
    await settle()
    fwk.handle.clock.advance(20)
    others = [start_waiting(fwk, info) for info in infos[1:3]]
    await settle()
    fwk.handle.clock.advance(11)  # only the first member's 30 s are up
    status = await result(first)
    assert status.code == Code.UNSCHEDULABLE and status.plugin == "GangScheduling"
    assert status.message() == "rejected due to timeout after waiting 30s at plugin GangScheduling"
    await settle()
    assert not any(w.done() for w in others)
    # the scheduler unreserves the timed-out pod, which sends the whole gang back to the queue
    fwk.run_unreserve(CycleState(), infos[0], "node-1")
    for status in await result(asyncio.gather(*others)):
        assert status.code == Code.UNSCHEDULABLE
        assert status.message() == "gang training/workers was rejected"
    assert fwk.handle.waiting_pods == {}


async def test_unreserve_rejects_only_waiting_siblings():
    fwk = make_framework()
    add_workload(fwk, workload(workers=3))
    add_workload(fwk, workload("other", workers=2))
    a0, a1, b0 = add_pods(fwk, pod("a-0"), pod("a-1"), pod("b-0", "other"))
    plain = PodInfo(pod("plain", None))
    wait_a0, wait_b0 = start_waiting(fwk, a0), start_waiting(fwk, b0)
    await settle()
    gang_plugin(fwk).unreserve(CycleState(), plain, "node-1")  # not in a gang: nothing happens
    await settle()
    assert not wait_a0.done() and not wait_b0.done()
    gang_plugin(fwk).unreserve(CycleState(), a1, "node-1")
    assert (await result(wait_a0)).message() == "gang training/workers was rejected"
    await settle()
    assert not wait_b0.done() and b0.uid in fwk.handle.waiting_pods
    finish(fwk)


async def test_missing_workload_at_permit_rejects():
    fwk = make_framework()
    (info,) = add_pods(fwk, pod("w-0"))
    status = fwk.run_permit(CycleState(), info, "node-1")
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE and status.reasons == ("waiting for workload training",)


async def test_min_count_one_never_waits():
    fwk = make_framework()
    add_workload(fwk, workload(workers=1))
    (info,) = add_pods(fwk, pod("w-0"))
    assert fwk.run_permit(CycleState(), info, "node-1") is None


async def test_reserve_is_a_no_op():
    fwk = make_framework()
    (info,) = add_pods(fwk, pod("w-0"))
    assert gang_plugin(fwk).reserve(CycleState(), info, "node-1") is None


# --- wiring, args, events ---------------------------------------------------------------------------


async def test_extension_points():
    fwk = make_framework()
    for point in ("preEnqueue", "reserve", "permit"):
        assert [p.NAME for p in fwk.points[point]] == ["GangScheduling"], point
    for point in ("filter", "score", "preFilter"):
        assert fwk.points[point] == [], point


async def test_two_profiles_share_the_pod_index():
    informers = FakeInformers()
    handle = Handle(client=None, informers=informers, clock=FakeClock())
    first, second = GangScheduling({}, handle), GangScheduling({}, handle)
    informers.informer(WORKLOADS).store.upsert(workload(workers=2))
    informers.informer(PODS).store.upsert(pod("w-0"))
    informers.informer(PODS).store.upsert(pod("w-1"))
    assert first.pre_enqueue(PodInfo(pod("w-0"))) is None
    assert second.pre_enqueue(PodInfo(pod("w-0"))) is None


@pytest.mark.parametrize(("args", "expected"), [
    ({}, 60.0), ({"permitWaitingTimeSeconds": 5}, 5.0), ({"permitWaitingTimeSeconds": 2.5}, 2.5),
])
def test_permit_timeout_args(args, expected):
    assert permit_timeout(args) == expected


@pytest.mark.parametrize("bad", [0, -1, "10", True, None])
def test_permit_timeout_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="permitWaitingTimeSeconds"):
        permit_timeout({"permitWaitingTimeSeconds": bad})


async def test_permit_waits_for_the_configured_time():
    fwk = make_framework({"permitWaitingTimeSeconds": 7})
    add_workload(fwk, workload(workers=2))
    (info,) = add_pods(fwk, pod("w-0"))
    status, timeout = gang_plugin(fwk).permit(CycleState(), info, "node-1")
    assert status.code == Code.WAIT and timeout == 7.0


def test_events_to_register():
    plugin = GangScheduling({}, Handle(client=None, informers=FakeInformers(), clock=FakeClock()))
    events = plugin.events_to_register()
    for event in (ClusterEvent("Pod", "Add"), ClusterEvent("Node", "Add"), ClusterEvent("Workload", "Add")):
        assert event in events
