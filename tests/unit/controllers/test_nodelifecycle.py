"""Node lifecycle controller: lost nodes become Unknown, get tainted, and their intolerant pods are evicted."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext
from controllers.nodelifecycle import NodeLifecycleController
from controllers.nodelifecycle.controller import GRACE_ENV, LEASE_NAMESPACE
from controllers.nodelifecycle.eviction import tolerates, toleration_window
from controllers.nodelifecycle.health import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    desired_no_execute,
    desired_no_schedule,
    zone_state,
)
from machinery.client import LEASES, NODES, PODS
from machinery.clock import FakeClock
from machinery.meta import format_rfc3339, micro_time_now
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

ZONE = "topology.kubernetes.io/zone"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(GRACE_ENV, raising=False)


class Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient(clock=self.clock)
        self.informers = FakeInformers()
        self.recorder = FakeRecorder()
        self.ctrl = NodeLifecycleController(ControllerContext(self.client, self.informers, self.recorder, self.clock))

    def now(self) -> str:
        return format_rfc3339(self.clock.now())

    def add_node(self, name, ready="True", zone="a", taints=None, conditions=None, **spec):
        conds = conditions if conditions is not None else [
            {"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": self.now(),
             "lastTransitionTime": self.now()},
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": self.now(),
             "lastTransitionTime": self.now()}]
        node = {"metadata": {"name": name, "labels": {ZONE: zone}},
                "spec": {**({"taints": taints} if taints else {}), **spec}, "status": {"conditions": conds}}
        self.client.seed(NODES, node)
        self.renew(name)
        self.sync()

    def renew(self, name):
        lease = self.client.stored(LEASES, LEASE_NAMESPACE, name)
        body = {"metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": name, "renewTime": micro_time_now(self.clock.now())}}
        if lease is None:
            self.client.seed(LEASES, body)
        else:
            lease["spec"]["renewTime"] = body["spec"]["renewTime"]
        self.sync()

    def add_pod(self, name, node="n1", tolerations=None):
        pod = {"metadata": {"name": name, "namespace": "default"},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}],
                        **({"tolerations": tolerations} if tolerations else {})},
               "status": {"phase": "Running"}}
        self.client.seed(PODS, pod)
        self.sync()

    def sync(self):
        self.informers.sync_from(self.client, NODES, LEASES, PODS)

    def node(self, name):
        return self.client.stored(NODES, None, name)

    def taints(self, name):
        return {(t["key"], t["effect"]) for t in (self.node(name).get("spec") or {}).get("taints") or ()}

    def ready(self, name):
        return next(c for c in self.node(name)["status"]["conditions"] if c["type"] == "Ready")

    async def reconcile(self, name):
        result = await self.ctrl.reconcile(name)
        self.sync()
        return result


@pytest.fixture
def cluster():
    return Cluster()


async def test_a_healthy_node_is_left_alone_and_looked_at_when_its_grace_would_expire(cluster):
    cluster.add_node("n1")
    requeue = await cluster.reconcile("n1")
    assert requeue == pytest.approx(40, abs=0.1)
    assert cluster.client.actions_of("update") == []
    assert cluster.taints("n1") == set()


async def test_lease_renewals_keep_a_node_healthy(cluster):
    cluster.add_node("n1")
    await cluster.reconcile("n1")
    for _ in range(3):
        cluster.clock.advance(30)
        cluster.renew("n1")
        requeue = await cluster.reconcile("n1")
        assert requeue == pytest.approx(40, abs=0.1)
    assert cluster.ready("n1")["status"] == "True"


async def test_no_renewal_for_the_grace_period_makes_conditions_unknown_and_taints_unreachable(cluster):
    cluster.add_node("n1")
    cluster.add_node("n2", zone="a")  # a healthy neighbour: not a full disruption
    await cluster.reconcile("n1")
    cluster.clock.advance(41)
    cluster.renew("n2")
    await cluster.reconcile("n1")
    ready = cluster.ready("n1")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    memory = next(c for c in cluster.node("n1")["status"]["conditions"] if c["type"] == "MemoryPressure")
    assert memory["status"] == "Unknown"
    [pid] = [c for c in cluster.node("n1")["status"]["conditions"] if c["type"] == "PIDPressure"]
    assert (pid["status"], pid["reason"]) == ("Unknown", "NodeStatusNeverUpdated")
    assert cluster.taints("n1") == {(TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")}
    no_execute = next(t for t in cluster.node("n1")["spec"]["taints"] if t["effect"] == "NoExecute")
    assert no_execute["timeAdded"] == cluster.now()
    assert "NodeNotReady" in cluster.recorder.reasons()
    assert [a.subresource for a in cluster.client.actions_of("update", "nodes")] == ["status", ""]
    # settled: a second look changes nothing
    before = len(cluster.client.actions)
    assert await cluster.reconcile("n1") is None
    assert len(cluster.client.actions) == before


async def test_kubelet_reporting_not_ready_taints_not_ready_at_once(cluster):
    cluster.add_node("n1", ready="False")
    cluster.add_node("n2")
    await cluster.reconcile("n1")
    assert cluster.taints("n1") == {(TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, "NoExecute")}
    assert cluster.ready("n1")["status"] == "False"  # the kubelet's condition is not touched


async def test_not_ready_taint_is_swapped_for_unreachable_when_the_kubelet_goes_silent(cluster):
    cluster.add_node("n1", ready="False")
    cluster.add_node("n2")
    await cluster.reconcile("n1")
    cluster.clock.advance(41)
    cluster.renew("n2")
    await cluster.reconcile("n1")
    assert cluster.taints("n1") == {(TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")}


async def test_a_recovered_node_loses_the_controller_taints_but_keeps_others(cluster):
    user = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    cluster.add_node("n1", taints=[user, {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
                                   {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": cluster.now()}])
    await cluster.reconcile("n1")
    assert cluster.node("n1")["spec"]["taints"] == [user]


async def test_pressure_conditions_and_unschedulable_give_no_schedule_taints(cluster):
    conds = [{"type": "Ready", "status": "True", "lastHeartbeatTime": cluster.now()},
             {"type": "DiskPressure", "status": "True"}, {"type": "PIDPressure", "status": "False"}]
    cluster.add_node("n1", conditions=conds, unschedulable=True)
    await cluster.reconcile("n1")
    assert cluster.taints("n1") == {("node.kubernetes.io/disk-pressure", "NoSchedule"),
                                    ("node.kubernetes.io/unschedulable", "NoSchedule")}


async def test_a_node_that_never_posted_status_gets_the_startup_grace(cluster):
    cluster.add_node("n1", conditions=[])
    cluster.add_node("n2")
    assert await cluster.reconcile("n1") == pytest.approx(60, abs=0.1)
    assert cluster.taints("n1") == set()  # no Ready condition yet: no taint (the kubelet registers with its own)
    cluster.clock.advance(61)
    cluster.renew("n2")
    await cluster.reconcile("n1")
    assert (cluster.ready("n1")["status"], cluster.ready("n1")["reason"]) == ("Unknown", "NodeStatusNeverUpdated")
    assert (TAINT_UNREACHABLE, "NoExecute") in cluster.taints("n1")


async def test_pods_without_toleration_are_evicted_tolerating_ones_stay_or_wait(cluster):
    cluster.add_node("n1")
    cluster.add_node("n2")
    cluster.add_pod("plain")
    cluster.add_pod("forever", tolerations=[{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}])
    cluster.add_pod("for-30s", tolerations=[{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                             "tolerationSeconds": 30}])
    cluster.add_pod("elsewhere", node="n2")
    await cluster.reconcile("n1")
    cluster.clock.advance(41)
    cluster.renew("n2")
    requeue = await cluster.reconcile("n1")
    assert requeue == pytest.approx(30)
    patch = cluster.client.actions_of("patch", "pods")
    assert [(a.name, a.subresource) for a in patch] == [("plain", "status")]
    [cond] = patch[0].body["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionTarget", "True", "DeletionByTaintManager")
    assert [a.name for a in cluster.client.actions_of("delete", "pods")] == ["plain"]
    assert "TaintManagerEviction" in cluster.recorder.reasons()
    cluster.clock.advance(30)
    cluster.renew("n2")
    assert await cluster.reconcile("n1") is None
    assert [a.name for a in cluster.client.actions_of("delete", "pods")] == ["plain", "for-30s"]
    assert {p["metadata"]["name"] for p in cluster.client.all(PODS)} == {"forever", "elsewhere"}


async def test_eviction_is_rate_limited_per_zone(cluster):
    for name in ("n1", "n2", "n3", "n4"):
        cluster.add_node(name)
    cluster.ctrl.health.clear()
    for name in ("n1", "n2"):
        await cluster.reconcile(name)
    cluster.clock.advance(41)
    for name in ("n3", "n4"):
        cluster.renew(name)
    await cluster.reconcile("n1")
    held = await cluster.reconcile("n2")
    assert (TAINT_UNREACHABLE, "NoExecute") in cluster.taints("n1")
    assert cluster.taints("n2") == {(TAINT_UNREACHABLE, "NoSchedule")}  # NoSchedule is never held back
    assert 0 < held <= 5
    cluster.clock.advance(10)
    await cluster.reconcile("n2")
    assert (TAINT_UNREACHABLE, "NoExecute") in cluster.taints("n2")


async def test_no_execute_taints_stop_when_every_zone_is_fully_disrupted(cluster):
    cluster.add_node("n1", zone="a")
    cluster.add_node("n2", zone="b", ready="False")
    await cluster.reconcile("n1")
    cluster.clock.advance(41)
    assert await cluster.reconcile("n1") == 5
    assert cluster.taints("n1") == {(TAINT_UNREACHABLE, "NoSchedule")}


async def test_a_small_zone_in_partial_disruption_is_not_evicted(cluster):
    for name in ("n1", "n2", "n3"):
        cluster.add_node(name, ready="False")
    cluster.add_node("n4")
    cluster.add_node("n5", zone="b")
    await cluster.reconcile("n1")
    assert cluster.taints("n1") == {(TAINT_NOT_READY, "NoSchedule")}


async def test_a_deleted_node_is_forgotten(cluster):
    cluster.add_node("n1")
    await cluster.reconcile("n1")
    await cluster.client.delete(NODES, "n1")
    cluster.sync()
    assert await cluster.ctrl.reconcile("n1") is None
    assert "n1" not in cluster.ctrl.health


async def test_lease_and_pod_events_enqueue_the_node(cluster):
    cluster.add_node("n1", taints=[{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": cluster.now()}])
    cluster.ctrl.on_lease({"metadata": {"name": "n1", "namespace": LEASE_NAMESPACE}})
    cluster.ctrl.on_pod_add({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}})
    cluster.ctrl.on_pod_add({"metadata": {"name": "q", "namespace": "d"}, "spec": {}})
    assert len(cluster.ctrl.queue) == 1


def test_grace_period_from_the_environment(monkeypatch):
    monkeypatch.setenv(GRACE_ENV, "2.5")
    assert Cluster().ctrl.grace_period == 2.5
    monkeypatch.setenv(GRACE_ENV, "nonsense")
    assert Cluster().ctrl.grace_period == 40


async def test_grace_period_class_attribute_is_honoured(monkeypatch):
    monkeypatch.setattr(NodeLifecycleController, "NODE_MONITOR_GRACE_PERIOD", 3.0)
    cluster = Cluster()
    cluster.add_node("n1")
    assert await cluster.reconcile("n1") == pytest.approx(3, abs=0.1)


# --- pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(("toleration", "expected"), [
    ({"operator": "Exists"}, True),
    ({"key": TAINT_UNREACHABLE, "operator": "Exists"}, True),
    ({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}, False),
    ({"key": TAINT_UNREACHABLE, "value": "x"}, False),
    ({"key": TAINT_UNREACHABLE, "value": ""}, True),
    ({"key": TAINT_NOT_READY, "operator": "Exists"}, False),
])
def test_toleration_matching(toleration, expected):
    assert tolerates(toleration, {"key": TAINT_UNREACHABLE, "effect": "NoExecute"}) is expected


def test_toleration_window_takes_the_smallest_seconds():
    taints = [{"key": TAINT_UNREACHABLE, "effect": "NoExecute"}, {"key": "x", "effect": "NoExecute"}]
    pod = {"spec": {"tolerations": [{"operator": "Exists", "tolerationSeconds": 100},
                                    {"key": "x", "operator": "Exists", "tolerationSeconds": 20}]}}
    assert toleration_window(pod, taints) == 20
    assert toleration_window({"spec": {}}, taints) == 0
    assert toleration_window({"spec": {"tolerations": [{"operator": "Exists"}]}}, taints) == float("inf")


def test_zone_states():
    def n(status):
        return {"status": {"conditions": [{"type": "Ready", "status": status}]}}
    assert zone_state([n("True"), n("False")]) == "Normal"
    assert zone_state([n("False"), n("Unknown")]) == "FullDisruption"
    assert zone_state([n("False")] * 3 + [n("True")] * 2) == "PartialDisruption"
    assert zone_state([n("False")] * 3 + [n("True")] * 3) == "Normal"


def test_a_node_without_conditions_wants_no_taints():
    assert desired_no_schedule({"status": {}}) == set()
    assert desired_no_execute({"status": {}}) is None


async def test_the_eviction_window_is_not_restarted_by_a_later_taint_or_a_taint_swap(cluster):
    """not-ready at t0 (pod tolerates 60 s); at t0+40 the kubelet goes silent, so the taint becomes
    unreachable (tolerated 60 s too): the pod still goes at t0+60, not t0+100."""
    cluster.add_node("n1", ready="False")
    cluster.add_node("n2")
    both = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
            for key in (TAINT_NOT_READY, TAINT_UNREACHABLE)]
    cluster.add_pod("p", tolerations=both)
    await cluster.reconcile("n1")
    cluster.clock.advance(41)
    cluster.renew("n2")
    await cluster.reconcile("n1")
    assert (TAINT_UNREACHABLE, "NoExecute") in cluster.taints("n1")  # swapped, with a new timeAdded
    assert not cluster.client.actions_of("delete", "pods")
    cluster.clock.advance(20)
    cluster.renew("n2")
    await cluster.reconcile("n1")
    assert [a.name for a in cluster.client.actions_of("delete", "pods")] == ["p"]
