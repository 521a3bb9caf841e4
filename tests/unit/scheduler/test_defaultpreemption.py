"""Unit tests for DefaultPreemption (PostFilter): which pods become victims, which node is chosen, PDBs,
eligibility, kube-scheduler's exact failure message, and the API calls that carry the preemption out.

Filtering is a small cpu-only Filter over hand-built NodeInfos; the API is a fake client that records calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from machinery.clock import FakeClock
from machinery.errors import not_found
from machinery.informer import SharedInformerFactory
from scheduler.framework.interface import CycleState, Handle, PostFilterResult
from scheduler.framework.status import Code, Status, unresolvable, unschedulable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot
from scheduler.plugins.defaultpreemption import (
    Candidate,
    DefaultPreemption,
    failure_message,
    parse_budgets,
    pick_one_node,
    split_by_pdb_violation,
)

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


# --- builders -----------------------------------------------------------------------------------------


def make_node(name: str, cpu: str = "4") -> Obj:
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "pods": "110"}}}


def make_pod(name: str, cpu: str = "1", priority: int = 0, *, node: str = "", labels: dict[str, str] | None = None,
             start: str | None = None, namespace: str = "default", never: bool = False, nominated: str = "",
             deleting: bool = False, conditions: list[Obj] | None = None) -> Obj:
    spec: Obj = {"priority": priority, "schedulerName": "default-scheduler",
                 "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node:
        spec["nodeName"] = node
    if never:
        spec["preemptionPolicy"] = "Never"
    meta: Obj = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: Obj = {"phase": "Running" if node else "Pending"}
    if start:
        status["startTime"] = start
    if nominated:
        status["nominatedNodeName"] = nominated
    if conditions:
        status["conditions"] = conditions
    return {"metadata": meta, "spec": spec, "status": status}


def make_pdb(name: str, labels: dict[str, str] | None, allowed: int, *, namespace: str = "default",
             disrupted: tuple[str, ...] = ()) -> Obj:
    spec: Obj = {} if labels is None else {"selector": {"matchLabels": labels}}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec,
            "status": {"disruptionsAllowed": allowed, "disruptedPods": {p: NOW.isoformat() for p in disrupted}}}


def node_info(name: str, pods: list[Obj], cpu: str = "4") -> NodeInfo:
    info = NodeInfo(make_node(name, cpu))
    for pod in pods:
        info.add_pod(PodInfo({**pod, "spec": {**pod["spec"], "nodeName": name}}))
    return info


# --- fakes --------------------------------------------------------------------------------------------


class FakeClient:
    """Records patch/delete calls; names in ``missing`` answer NotFound."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.missing: set[str] = set()

    async def patch(self, resource: Any, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None, **_: Any) -> Obj:
        self.calls.append(("patch", resource.plural, name, namespace, patch, patch_type, subresource))
        if name in self.missing:
            raise not_found(resource.plural, name)
        return {}

    async def delete(self, resource: Any, name: str, namespace: str | None = None, **kwargs: Any) -> Obj:
        self.calls.append(("delete", resource.plural, name, namespace, kwargs))
        if name in self.missing:
            raise not_found(resource.plural, name)
        return {}

    def deleted(self) -> list[str]:
        return [c[2] for c in self.calls if c[0] == "delete"]

    def status_patches(self, name: str) -> list[Obj]:
        return [c[4] for c in self.calls if c[0] == "patch" and c[2] == name]


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type, reason, message))


class CpuFilter:
    """run_filter stand-in: cpu requests must fit allocatable; records which nodes it saw."""

    def __init__(self) -> None:
        self.nodes_seen: list[str] = []

    def __call__(self, state: CycleState, pod_info: PodInfo, info: NodeInfo) -> Status | None:
        self.nodes_seen.append(info.name)
        if info.requested.milli_cpu + pod_info.requests.milli_cpu > info.allocatable.milli_cpu:
            return unschedulable("Insufficient cpu")
        return None


class WaitingPodStub:
    def __init__(self) -> None:
        self.rejected: list[tuple[str, str]] = []

    def reject(self, plugin: str, message: str) -> None:
        self.rejected.append((plugin, message))


class Env:
    """A plugin wired to fakes, over the given nodes."""

    def __init__(self, nodes: list[NodeInfo], *, args: Obj | None = None, pdbs: list[Obj] = (),
                 nominated: dict[str, list[Obj]] | None = None, extra: Obj | None = None) -> None:
        self.client = FakeClient()
        self.recorder = FakeRecorder()
        self.filter = CpuFilter()
        self.snapshot = Snapshot(nodes)
        informers = SharedInformerFactory(self.client)  # type: ignore[arg-type]
        self.handle = Handle(client=self.client, informers=informers, clock=FakeClock(NOW),  # type: ignore[arg-type]
                             recorder=self.recorder, snapshot=lambda: self.snapshot,  # type: ignore[arg-type]
                             run_filter=self.filter, extra=dict(extra or {}))
        nominated_infos = {n: [PodInfo(p) for p in pods] for n, pods in (nominated or {}).items()}
        self.handle.extra.setdefault("nominated_pods_for_node", lambda n: nominated_infos.get(n, []))
        self.plugin = DefaultPreemption(args or {}, self.handle)
        self.plugin.random_offset = lambda n: 0
        for pdb in pdbs:
            self.plugin._pdb_informer.store.upsert(pdb)

    def statuses(self, preemptor: PodInfo, unresolvable_nodes: tuple[str, ...] = ()) -> dict[str, Status]:
        """What Filter would have said about every node (cpu), with some nodes made unresolvable."""
        result = {}
        for info in self.snapshot.node_infos:
            if info.name in unresolvable_nodes:
                result[info.name] = unresolvable("node(s) had untolerated taint {dedicated: infra}")
            else:
                result[info.name] = CpuFilter()(CycleState(), preemptor, info) or Status()
        return result

    async def run(self, preemptor: Obj, unresolvable_nodes: tuple[str, ...] = (),
                  statuses: dict[str, Status] | None = None) -> tuple[PostFilterResult | None, Status]:
        pod_info = PodInfo(preemptor)
        if statuses is None:
            statuses = self.statuses(pod_info, unresolvable_nodes)
        self.filter.nodes_seen.clear()
        return await self.plugin.post_filter(CycleState(), pod_info, statuses)


# --- victims --------------------------------------------------------------------------------------------

VICTIM_CASES = [
    pytest.param([("a", "1", 1), ("b", "1", 2), ("c", "1", 3), ("d", "1", 100)], "2", 5, ["b", "a"],
                 id="lowest priority first, higher ones reprieved"),
    pytest.param([("a", "2", 1), ("b", "1", 2), ("c", "1", 3)], "2", 5, ["a"],
                 id="minimal set: one big low pod instead of two small ones"),
    pytest.param([("a", "1", 1), ("b", "1", 1), ("c", "1", 1), ("d", "1", 1)], "4", 5, ["a", "b", "c", "d"],
                 id="everything must go"),
    pytest.param([("a", "1", 5), ("b", "1", 1), ("c", "1", 7)], "2", 5, ["b"],
                 id="equal priority is not a victim"),
]


@pytest.mark.parametrize(("pods", "cpu", "priority", "victims"), VICTIM_CASES)
async def test_victims_are_the_minimal_lower_priority_set(pods: list[tuple[str, str, int]], cpu: str, priority: int,
                                                          victims: list[str]) -> None:
    env = Env([node_info("n1", [make_pod(n, c, p) for n, c, p in pods])])
    result, status = await env.run(make_pod("preemptor", cpu, priority))
    assert status.is_success(), status
    assert result == PostFilterResult(nominated_node_name="n1")
    assert sorted(env.client.deleted()) == sorted(victims)


async def test_victims_of_equal_priority_reprieve_the_longest_running_first() -> None:
    pods = [make_pod("young", "1", 1, start="2025-12-31T12:00:00Z"), make_pod("old", "1", 1,
                                                                             start="2025-12-01T00:00:00Z"),
            make_pod("big", "2", 100)]
    env = Env([node_info("n1", pods)])
    _, status = await env.run(make_pod("preemptor", "1", 5))
    assert status.is_success()
    assert env.client.deleted() == ["young"]


# --- node choice --------------------------------------------------------------------------------------


def cand(name: str, priorities: list[int], violations: int = 0, starts: list[str] | None = None) -> Candidate:
    starts = starts or ["2025-12-01T00:00:00Z"] * len(priorities)
    victims = [PodInfo(make_pod(f"{name}-{i}", "1", p, start=s)) for i, (p, s) in
               enumerate(zip(priorities, starts, strict=True))]
    victims.sort(key=lambda v: -v.priority)
    return Candidate(name, victims, violations)


PICK_CASES = [
    pytest.param([cand("a", [1], 1), cand("b", [50, 50, 50], 0)], "b", id="fewest PDB violations"),
    pytest.param([cand("a", [10, 1]), cand("b", [5, 5, 5])], "b", id="lowest highest-victim priority"),
    pytest.param([cand("a", [5, 3]), cand("b", [5, 1])], "b", id="smallest sum of priorities"),
    pytest.param([cand("a", [-10, -10]), cand("b", [-10])], "b", id="sum shifts each victim by 2^31"),
    pytest.param([cand("a", [1_000_000_000, -(2**31)]), cand("b", [1_000_000_000])], "b",
                 id="fewest victims when sums tie"),
    pytest.param([cand("a", [5, 1], starts=["2025-12-01T00:00:00Z", "2025-12-31T00:00:00Z"]),
                  cand("b", [5, 1], starts=["2025-12-20T00:00:00Z", "2025-11-01T00:00:00Z"])], "b",
                 id="latest start of the highest-priority victims"),
    pytest.param([cand("a", [3]), cand("b", [3])], "a", id="first on a full tie"),
]


@pytest.mark.parametrize(("candidates", "expected"), PICK_CASES)
def test_pick_one_node(candidates: list[Candidate], expected: str) -> None:
    assert pick_one_node(candidates, NOW.timestamp()).node_name == expected


async def test_prefers_node_with_lower_priority_victims_end_to_end() -> None:
    env = Env([node_info("n1", [make_pod("x", "4", 3)]), node_info("n2", [make_pod("y", "4", 2)]),
               node_info("n3", [make_pod("z", "4", 4)])])
    result, status = await env.run(make_pod("preemptor", "2", 10))
    assert status.is_success()
    assert result is not None and result.nominated_node_name == "n2"
    assert env.client.deleted() == ["y"]


# --- PDBs ---------------------------------------------------------------------------------------------


async def test_avoids_node_whose_victim_violates_a_pdb() -> None:
    env = Env([node_info("n1", [make_pod("guarded", "4", 1, labels={"app": "db"})]),
               node_info("n2", [make_pod("free", "4", 3, labels={"app": "web"})])],
              pdbs=[make_pdb("db", {"app": "db"}, 0)])
    result, status = await env.run(make_pod("preemptor", "2", 10))
    assert status.is_success()
    assert result is not None and result.nominated_node_name == "n2"
    assert env.client.deleted() == ["free"]


async def test_reprieves_pdb_protected_pods_first() -> None:
    # either pod would make room; the PDB-protected one is tried first and stays, although its priority is lower
    env = Env([node_info("n1", [make_pod("guarded", "2", 1, labels={"app": "db"}), make_pod("other", "2", 2)])],
              pdbs=[make_pdb("db", {"app": "db"}, 0)])
    _, status = await env.run(make_pod("preemptor", "2", 10))
    assert status.is_success()
    assert env.client.deleted() == ["other"]


async def test_uses_a_violating_node_when_nothing_else_helps() -> None:
    env = Env([node_info("n1", [make_pod("guarded", "4", 1, labels={"app": "db"})])],
              pdbs=[make_pdb("db", {"app": "db"}, 0)])
    result, status = await env.run(make_pod("preemptor", "2", 10))
    assert status.is_success() and result is not None and result.nominated_node_name == "n1"
    assert env.client.deleted() == ["guarded"]


SPLIT_CASES = [
    pytest.param([make_pdb("p", {"app": "a"}, 1)], ["a1", "a2"], ["a2"], id="budget used up by the first pod"),
    pytest.param([make_pdb("p", {"app": "a"}, 2)], ["a1", "a2"], [], id="budget large enough"),
    pytest.param([make_pdb("p", {"app": "a"}, 0, namespace="other")], ["a1"], [], id="other namespace"),
    pytest.param([make_pdb("p", None, 0)], ["a1"], [], id="nil selector selects nothing"),
    pytest.param([make_pdb("p", {}, 0)], ["a1"], [], id="empty selector selects nothing"),
    pytest.param([make_pdb("p", {"app": "a"}, 0, disrupted=("a1",))], ["a1", "a2"], ["a2"],
                 id="already disrupted pods do not count"),
    pytest.param([make_pdb("p", {"app": "a"}, 0)], ["nolabels"], [], id="pods without labels match nothing"),
]


@pytest.mark.parametrize(("pdbs", "names", "violating"), SPLIT_CASES)
def test_split_by_pdb_violation(pdbs: list[Obj], names: list[str], violating: list[str]) -> None:
    pods = [PodInfo(make_pod(n, labels={} if n == "nolabels" else {"app": "a"})) for n in names]
    bad, good = split_by_pdb_violation(pods, parse_budgets(pdbs))
    assert [p.name for p in bad] == violating
    assert [p.name for p in good] == [n for n in names if n not in violating]


# --- eligibility --------------------------------------------------------------------------------------


async def test_preemption_policy_never() -> None:
    env = Env([node_info("n1", [make_pod("low", "4", 1)])])
    result, status = await env.run(make_pod("preemptor", "2", 10, never=True))
    assert result is None
    assert status.code == Code.UNSCHEDULABLE
    assert status.reasons == ("preemption: not eligible due to preemptionPolicy=Never.",)
    assert env.client.calls == []


PREEMPTED_CONDITION = [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]

ELIGIBILITY_CASES = [
    pytest.param(PREEMPTED_CONDITION, True, (), False, id="victim still terminating: wait"),
    pytest.param(None, True, (), True, id="terminating but not preempted by the scheduler"),
    pytest.param(PREEMPTED_CONDITION, True, ("n1",), True, id="nominated node now unresolvable"),
    pytest.param(PREEMPTED_CONDITION, False, (), True, id="not terminating"),
]


@pytest.mark.parametrize(("conditions", "deleting", "unresolvable_nodes", "eligible"), ELIGIBILITY_CASES)
async def test_already_nominated_preemptor(conditions: list[Obj] | None, deleting: bool,
                                           unresolvable_nodes: tuple[str, ...], eligible: bool) -> None:
    env = Env([node_info("n1", [make_pod("dying", "4", 1, deleting=deleting, conditions=conditions)]),
               node_info("n2", [make_pod("low", "4", 1)])])
    result, status = await env.run(make_pod("preemptor", "2", 10, nominated="n1"), unresolvable_nodes)
    if eligible:
        assert status.is_success() and result is not None
    else:
        assert result is None
        assert status.code == Code.UNSCHEDULABLE
        assert status.reasons == ("preemption: not eligible due to a terminating pod on the nominated node.",)
        assert env.client.calls == []


# --- failure message ------------------------------------------------------------------------------------


async def test_unresolvable_nodes_are_skipped_and_the_message_is_kube_schedulers() -> None:
    env = Env([
        node_info("tainted", [make_pod("t", "4", 1)]),  # unresolvable: never dry-run
        node_info("high", [make_pod("h", "4", 100)]),  # nothing to preempt
        node_info("small", [make_pod("s", "1", 1), make_pod("s2", "3", 100)]),  # not enough even without s
        node_info("high2", [make_pod("h2", "4", 100)]),
    ])
    result, status = await env.run(make_pod("preemptor", "2", 10), unresolvable_nodes=("tainted",))
    assert result is None
    assert status.code == Code.UNSCHEDULABLE
    assert status.reasons == ("preemption: 0/4 nodes are available: 1 Insufficient cpu, "
                              "1 Preemption is not helpful for scheduling, "
                              "2 No preemption victims found for incoming pod.",)
    assert "tainted" not in env.filter.nodes_seen
    assert env.client.calls == []


async def test_no_potential_node_at_all() -> None:
    env = Env([node_info("a", []), node_info("b", [])])
    _, status = await env.run(make_pod("preemptor", "8", 10), unresolvable_nodes=("a", "b"))
    assert status.reasons == ("preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",)


async def test_failed_preemption_clears_a_stale_nomination() -> None:
    env = Env([node_info("n1", [make_pod("h", "4", 100)])])
    _, status = await env.run(make_pod("preemptor", "2", 10, nominated="n1"))
    assert status.code == Code.UNSCHEDULABLE
    assert env.client.status_patches("preemptor") == [{"status": {"nominatedNodeName": None}}]


def test_failure_message_counts_absent_nodes_as_not_helpful() -> None:
    statuses = {"a": unschedulable("Insufficient cpu"), "b": unschedulable("Insufficient cpu")}
    assert failure_message(5, statuses) == ("0/5 nodes are available: 2 Insufficient cpu, "
                                            "3 Preemption is not helpful for scheduling.")


# --- API calls ----------------------------------------------------------------------------------------


async def test_api_calls_on_success() -> None:
    env = Env([node_info("n1", [make_pod("victim", "4", 1)])])
    preemptor = make_pod("preemptor", "2", 10)
    result, status = await env.run(preemptor)
    assert status.is_success() and result == PostFilterResult("n1")
    message = "default-scheduler: preempting to accommodate a higher priority pod"
    assert env.client.calls == [
        ("patch", "pods", "victim", "default",
         {"status": {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                                     "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
         "strategic", "status"),
        ("delete", "pods", "victim", "default", {}),
        ("patch", "pods", "preemptor", "default", {"status": {"nominatedNodeName": "n1"}}, "strategic", "status"),
    ]
    assert env.recorder.events == [("victim", "Normal", "Preempted", "Preempted by pod uid-preemptor on node n1")]


async def test_terminating_waiting_and_vanished_victims() -> None:
    pods = [make_pod("dying", "1", 1, deleting=True), make_pod("waiting", "1", 1), make_pod("gone", "1", 1),
            make_pod("live", "1", 1)]
    env = Env([node_info("n1", pods)])
    waiting = WaitingPodStub()
    env.handle.waiting_pods["uid-waiting"] = waiting
    env.client.missing.add("gone")
    _, status = await env.run(make_pod("preemptor", "4", 10))
    assert status.is_success()
    assert waiting.rejected == [("DefaultPreemption", "preempted")]
    assert env.client.deleted() == ["live"]  # not the terminating, the waiting or the vanished one
    assert len(env.client.status_patches("gone")) == 1
    assert {e[0] for e in env.recorder.events} == {"waiting", "live"}


async def test_victim_api_error_fails_the_attempt() -> None:
    env = Env([node_info("n1", [make_pod("victim", "4", 1)])])

    async def broken(*args: Any, **kwargs: Any) -> Obj:
        raise RuntimeError("apiserver down")

    env.client.delete = broken  # type: ignore[method-assign]
    result, status = await env.run(make_pod("preemptor", "2", 10))
    assert result is None and status.code == Code.ERROR
    assert env.client.status_patches("preemptor") == []


async def test_clears_lower_priority_nominations_and_respects_higher_ones() -> None:
    nominated = {"n1": [make_pod("big-nominee", "3", 10, nominated="n1")],
                 "n2": [make_pod("low-nominee", "1", 1, nominated="n2"), make_pod("peer", "1", 10, nominated="n2")]}
    env = Env([node_info("n1", [make_pod("a", "4", 1)]), node_info("n2", [make_pod("b", "4", 2)])],
              nominated=nominated)
    result, status = await env.run(make_pod("preemptor", "2", 10))
    # n1 would be the better choice (lower victim priority) but a pod of equal priority is nominated there
    assert status.is_success() and result == PostFilterResult("n2")
    assert env.client.status_patches("low-nominee") == [{"status": {"nominatedNodeName": None}}]
    assert env.client.status_patches("peer") == []
    assert env.client.status_patches("big-nominee") == []


# --- candidate limits and args --------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "nodes", "expected"), [
    ({}, 50, 50), ({}, 5000, 500), ({}, 500, 100),
    ({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 3}, 10, 3),
    ({"minCandidateNodesPercentage": 50, "minCandidateNodesAbsolute": 1}, 10, 5),
])
def test_num_candidates(args: Obj, nodes: int, expected: int) -> None:
    assert Env([], args=args).plugin.num_candidates(nodes) == expected


async def test_stops_after_enough_candidates_from_the_offset() -> None:
    nodes = [node_info(f"n{i}", [make_pod(f"p{i}", "4", 1)]) for i in range(5)]
    env = Env(nodes, args={"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 2})
    env.plugin.random_offset = lambda n: 3
    result, status = await env.run(make_pod("preemptor", "2", 10))
    assert status.is_success()
    assert set(env.filter.nodes_seen) == {"n3", "n4"}
    assert result is not None and result.nominated_node_name in {"n3", "n4"}


async def test_keeps_searching_while_only_pdb_violating_candidates_were_found() -> None:
    nodes = [node_info("n0", [make_pod("g", "4", 1, labels={"app": "db"})]), node_info("n1", [make_pod("f", "4", 1)])]
    env = Env(nodes, args={"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 1},
              pdbs=[make_pdb("db", {"app": "db"}, 0)])
    result, _ = await env.run(make_pod("preemptor", "2", 10))
    assert result == PostFilterResult("n1")


@pytest.mark.parametrize("args", [
    {"minCandidateNodesPercentage": 101}, {"minCandidateNodesPercentage": -1}, {"minCandidateNodesAbsolute": -1},
    {"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 0},
])
def test_invalid_args(args: Obj) -> None:
    with pytest.raises(ValueError):
        Env([], args=args)


# --- PreFilter extensions -------------------------------------------------------------------------------


class CountingExtension:
    """A PreFilter plugin with add_pod/remove_pod that counts pods in its (cloned) state."""

    NAME = "Counting"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def remove_pod(self, state: CycleState, pod_info: PodInfo, other: PodInfo, info: NodeInfo) -> Status | None:
        self.calls.append(("remove", other.name))
        state.write("count", state.read("count") - 1)
        return None

    def add_pod(self, state: CycleState, pod_info: PodInfo, other: PodInfo, info: NodeInfo) -> Status | None:
        self.calls.append(("add", other.name))
        state.write("count", state.read("count") + 1)
        return None


@pytest.mark.parametrize("skipped", [False, True])
async def test_pre_filter_extensions_follow_the_dry_run(skipped: bool) -> None:
    extension = CountingExtension()
    env = Env([node_info("n1", [make_pod("a", "2", 1), make_pod("b", "2", 2)])],
              extra={"pre_filter_plugins": [extension, object()]})
    state = CycleState()
    state.write("count", 2)
    if skipped:
        state.skip_filter_plugins.add("Counting")
    preemptor = PodInfo(make_pod("preemptor", "2", 10))
    _, status = await env.plugin.post_filter(state, preemptor, env.statuses(preemptor))
    assert status.is_success()
    assert state.read("count") == 2  # only clones were changed
    if skipped:
        assert extension.calls == []
    else:
        # remove every lower-priority pod, then reprieve b (fits) and try a (does not: a is the victim)
        assert extension.calls == [("remove", "a"), ("remove", "b"), ("add", "b"), ("add", "a"), ("remove", "a")]


def test_registered_as_post_filter_only() -> None:
    plugin = Env([]).plugin
    assert plugin.NAME == "DefaultPreemption"
    assert not hasattr(plugin, "filter") and not hasattr(plugin, "events_to_register")

