"""The framework runtime with stub plugins: plugin order and skipping, feasible-node search,
weighted scoring, kube-scheduler's failure message, Permit waiting, and profiles from config."""

from __future__ import annotations

import asyncio

import pytest

from machinery.clock import FakeClock
from scheduler.config import Profile, SchedulerConfigError, parse_config
from scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Snapshot, Status, skip, unschedulable
from scheduler.framework.interface import PreFilterResult
from scheduler.framework.runtime import Diagnosis, Framework, fit_error_message
from scheduler.framework.status import Code, unresolvable


def node(name, cpu="4", labels=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "status": {"allocatable": {"cpu": cpu, "pods": "110"}}}


def pod(name="p", cpu="1", priority=0):
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}


class CpuFit:
    NAME = "CpuFit"

    def __init__(self, args, handle):
        self.calls = 0

    def filter(self, state, pod_info, node_info):
        self.calls += 1
        if node_info.requested.milli_cpu + pod_info.requests.milli_cpu > node_info.allocatable.milli_cpu:
            return unschedulable("Insufficient cpu")
        return None


class Tainted:
    NAME = "Tainted"

    def __init__(self, args, handle):
        pass

    def filter(self, state, pod_info, node_info):
        if node_info.labels.get("tainted"):
            return unresolvable("node(s) had untolerated taint {dedicated: infra}")
        return None


class MostFree:
    NAME = "MostFree"

    def __init__(self, args, handle):
        pass

    def score(self, state, pod_info, node_info):
        return (node_info.allocatable.milli_cpu - node_info.requested.milli_cpu) // 100

    def normalize_score(self, state, pod_info, scores):
        top = max(s.score for s in scores) or 1
        for s in scores:
            s.score = s.score * 100 // top


class PreferLabel:
    NAME = "PreferLabel"

    def __init__(self, args, handle):
        self.label = args.get("label", "fast")

    def score(self, state, pod_info, node_info):
        return 100 if node_info.labels.get(self.label) else 0


class OnlyNodes:
    NAME = "OnlyNodes"

    def __init__(self, args, handle):
        self.names = set(args.get("names", []))

    def pre_filter(self, state, pod_info, nodes):
        if not self.names:
            return None, skip()
        return PreFilterResult(self.names), None


class Waiter:
    NAME = "Waiter"

    def __init__(self, args, handle):
        self.handle = handle

    def permit(self, state, pod_info, node_name):
        return Status(Code.WAIT), 30.0


class Binder:
    NAME = "Binder"

    def __init__(self, args, handle):
        self.bound = []

    async def bind(self, state, pod_info, node_name):
        self.bound.append((pod_info.key, node_name))
        return None


REGISTRY = {cls.NAME: cls for cls in (CpuFit, Tainted, MostFree, PreferLabel, OnlyNodes, Waiter, Binder)}


def framework(plugins, weights=None, args=None, percentage=0):
    profile = Profile()
    profile.multi_point.enabled = [(name, (weights or {}).get(name, 0)) for name in plugins]
    profile.plugin_args = args or {}
    handle = Handle(client=None, informers=None, clock=FakeClock())
    return Framework(profile, REGISTRY, handle, percentage_of_nodes_to_score=percentage)


def snapshot(*nodes_and_pods):
    infos = []
    for n, pods in nodes_and_pods:
        info = NodeInfo(n)
        for p in pods:
            info.add_pod(PodInfo(p))
        infos.append(info)
    return Snapshot(infos)


def test_plugins_are_placed_at_the_points_they_implement():
    fwk = framework(["OnlyNodes", "CpuFit", "MostFree", "Binder"])
    assert [p.NAME for p in fwk.points["filter"]] == ["CpuFit"]
    assert [p.NAME for p in fwk.points["score"]] == ["MostFree"]
    assert [p.NAME for p in fwk.points["preFilter"]] == ["OnlyNodes"]
    assert fwk.weights == {"MostFree": 1}


def test_a_profile_needs_a_binder():
    with pytest.raises(ValueError, match="bind plugin"):
        framework(["CpuFit"])


def test_feasible_nodes_and_the_failure_message():
    fwk = framework(["CpuFit", "Tainted", "Binder"])
    snap = snapshot((node("a", cpu="1"), [pod("x", cpu="500m")]), (node("b", labels={"tainted": "1"}), []),
                    (node("c", cpu="1"), []), (node("d", cpu="2"), []))
    feasible, diagnosis = fwk.find_feasible_nodes(CycleState(), PodInfo(pod(cpu="2")), snap)
    assert [n.name for n in feasible] == ["d"]
    assert fit_error_message(4, diagnosis) == (
        "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 Insufficient cpu.")
    assert diagnosis.unschedulable_plugins == {"CpuFit", "Tainted"}
    assert diagnosis.node_statuses["b"].code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_no_nodes_at_all_is_said_plainly():
    assert fit_error_message(0, Diagnosis()) == "no nodes available to schedule pods"


def test_post_filter_message_is_appended():
    diagnosis = Diagnosis(node_statuses={"a": unschedulable("Insufficient cpu")},
                          post_filter_message="preemption: 0/1 nodes are available: 1 No preemption victims "
                                              "found for incoming pod.")
    assert fit_error_message(1, diagnosis) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption "
        "victims found for incoming pod..")


def test_pre_filter_result_restricts_nodes_and_skip_is_honoured():
    fwk = framework(["OnlyNodes", "CpuFit", "Binder"], args={"OnlyNodes": {"names": ["c"]}})
    snap = snapshot((node("a"), []), (node("b"), []), (node("c"), []))
    feasible, _ = fwk.find_feasible_nodes(CycleState(), PodInfo(pod()), snap)
    assert [n.name for n in feasible] == ["c"]
    everywhere = framework(["OnlyNodes", "CpuFit", "Binder"])
    state = CycleState()
    feasible, _ = everywhere.find_feasible_nodes(state, PodInfo(pod()), snap)
    assert len(feasible) == 3 and state.skip_filter_plugins == {"OnlyNodes"}


def test_pre_filter_result_naming_no_existing_node_is_unresolvable():
    fwk = framework(["OnlyNodes", "CpuFit", "Binder"], args={"OnlyNodes": {"names": ["zz"]}})
    feasible, diagnosis = fwk.find_feasible_nodes(CycleState(), PodInfo(pod()), snapshot((node("a"), [])))
    assert feasible == [] and diagnosis.node_statuses == {}


def test_percentage_of_nodes_to_score_stops_early_and_rotates_the_start():
    fwk = framework(["CpuFit", "Binder"])
    nodes = [(node(f"n{i:04d}"), []) for i in range(1000)]
    snap = snapshot(*nodes)
    assert fwk.num_feasible_nodes_to_find(1000) == 420  # adaptive: 50 - 1000/125 = 42%
    assert fwk.num_feasible_nodes_to_find(50) == 50
    assert fwk.num_feasible_nodes_to_find(5000) == 500  # 10%
    assert framework(["CpuFit", "Binder"], percentage=5).num_feasible_nodes_to_find(1000) == 100
    first, _ = fwk.find_feasible_nodes(CycleState(), PodInfo(pod()), snap)
    second, _ = fwk.find_feasible_nodes(CycleState(), PodInfo(pod()), snap)
    assert len(first) == 420 and first[0].name == "n0000" and second[0].name == "n0420"


def test_weighted_scores_and_host_selection():
    fwk = framework(["CpuFit", "MostFree", "PreferLabel", "Binder"], weights={"PreferLabel": 2})
    nodes = [NodeInfo(node("a", cpu="4")), NodeInfo(node("b", cpu="2", labels={"fast": "1"}))]
    totals = fwk.prioritize(CycleState(), PodInfo(pod()), nodes)
    assert totals == [100, 50 + 200]
    assert fwk.select_host(nodes, totals).name == "b"


def test_ties_are_broken_at_random_among_the_best():
    nodes = [NodeInfo(node(n)) for n in "abc"]
    chosen = {Framework.select_host(nodes, [5, 5, 1]).name for _ in range(200)}
    assert chosen == {"a", "b"}


def test_out_of_range_scores_are_errors():
    class Bad(PreferLabel):
        NAME = "Bad"

        def score(self, state, pod_info, node_info):
            return 101
    REGISTRY["Bad"] = Bad
    try:
        fwk = framework(["Bad", "Binder"])
        with pytest.raises(RuntimeError, match="outside"):
            fwk.prioritize(CycleState(), PodInfo(pod()), [NodeInfo(node("a"))])
    finally:
        del REGISTRY["Bad"]


async def test_permit_wait_then_allow_or_timeout():
    fwk = framework(["CpuFit", "Waiter", "Binder"])
    info = PodInfo(pod())
    assert fwk.run_permit(CycleState(), info, "a").code == Code.WAIT
    waiting = asyncio.create_task(fwk.wait_on_permit(info))
    await asyncio.sleep(0)
    fwk.handle.waiting_pods[info.uid].allow("Waiter")
    assert await waiting is None
    assert fwk.handle.waiting_pods == {}

    other = PodInfo(pod("late"))
    fwk.run_permit(CycleState(), other, "a")
    waiting = asyncio.create_task(fwk.wait_on_permit(other))
    for _ in range(3):
        await asyncio.sleep(0)
    fwk.handle.clock.advance(31)
    status = await waiting
    assert status.code == Code.UNSCHEDULABLE
    assert status.message() == "rejected due to timeout after waiting 30s at plugin Waiter"


def test_nominated_pods_count_against_lower_priority_pods():
    fwk = framework(["CpuFit", "Binder"])
    snap = snapshot((node("a", cpu="2"), []))
    fwk.nominated_pods_for_node = lambda name: [PodInfo(pod("vip", cpu="2", priority=100))]
    fwk.nominated_node_names = lambda: {"a"}
    feasible, diagnosis = fwk.find_feasible_nodes(CycleState(), PodInfo(pod("low", cpu="1", priority=1)), snap)
    assert feasible == [] and diagnosis.node_statuses["a"].reasons == ("Insufficient cpu",)
    feasible, _ = fwk.find_feasible_nodes(CycleState(), PodInfo(pod("high", cpu="1", priority=200)), snap)
    assert [n.name for n in feasible] == ["a"]


def test_config_multi_point_and_per_point_overrides():
    known = {"CpuFit", "MostFree", "PreferLabel", "Binder", "Tainted"}
    config = parse_config({
        "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
        "profiles": [
            {"schedulerName": "custom",
             "plugins": {"multiPoint": {"disabled": [{"name": "*"}],
                                        "enabled": [{"name": "CpuFit"}, {"name": "MostFree"}, {"name": "Binder"}]},
                         "score": {"enabled": [{"name": "PreferLabel", "weight": 5}],
                                   "disabled": [{"name": "MostFree"}]}},
             "pluginConfig": [{"name": "PreferLabel", "args": {"label": "ssd"}}]},
        ]}, known)
    [profile] = config.profiles
    fwk = Framework(profile, REGISTRY, Handle(client=None, informers=None, clock=FakeClock()))
    assert fwk.scheduler_name == "custom"
    assert [p.NAME for p in fwk.points["score"]] == ["PreferLabel"]
    assert fwk.weights["PreferLabel"] == 5 and fwk.plugins["PreferLabel"].label == "ssd"


@pytest.mark.parametrize(("doc", "message"), [
    ({"kind": "Other"}, "want apiVersion kubescheduler.config.k8s.io/v1"),
    ({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}, "duplicate schedulerName 'a'"),
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]}, "unknown plugin 'Nope'"),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "MostFree", "weight": -1}]}}}]},
     "weight must be a non-negative integer"),
    ({"profiles": [{"plugins": {"sorting": {}}}]}, "unknown extension point 'sorting'"),
    ({"percentageOfNodesToScore": 101}, "percentageOfNodesToScore must be an integer from 0 to 100"),
    ({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 2}, "podMaxBackoffSeconds must be at least"),
    ({"profiles": [{"plugins": {"score": {"enabled": ["MostFree"]}}}]}, "enabled must be a list of {name: ...}"),
    ({"profiles": [{"plugins": [{"score": {}}]}]}, "plugins must be an object keyed by extension point"),
    ({"profiles": [{"pluginConfig": ["MostFree"]}]}, "pluginConfig must be a list of {name, args} objects"),
    ({"profiles": [{"schedulerName": 5}]}, "schedulerName must be a string"),
])
def test_bad_config_is_one_clear_error(doc, message):
    with pytest.raises(SchedulerConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(doc, {"MostFree", "CpuFit"})
