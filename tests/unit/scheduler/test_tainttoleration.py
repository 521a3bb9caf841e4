"""TaintToleration: which taints a pod's tolerations match, the exact rejection text, and the score.

The reason string ends up verbatim in "0/3 nodes are available: 1 node(s) had untolerated taint {a: b}",
so it is checked character for character, along with the UNSCHEDULABLE_AND_UNRESOLVABLE code that
keeps preemption from trying.
"""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import ClusterEvent, Code, CycleState, NodeInfo, NodeScore, PodInfo
from scheduler.plugins.tainttoleration import TaintToleration, find_untolerated_taint, tolerates

Obj = dict[str, Any]


def make_pod(*tolerations: Obj) -> PodInfo:
    spec: Obj = {"containers": [{"name": "c"}]}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    return PodInfo({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec})


def make_node(name: str, *taints: Obj) -> NodeInfo:
    node: Obj = {"metadata": {"name": name}, "spec": {}}
    if taints:
        node["spec"]["taints"] = list(taints)
    return NodeInfo(node)


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> Obj:
    result = {"key": key, "effect": effect}
    if value:
        result["value"] = value
    return result


@pytest.mark.parametrize(("toleration", "the_taint", "expected"), [
    ({"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"}, taint("a", "1"), True),
    ({"key": "a", "value": "1"}, taint("a", "1"), True),  # empty operator means Equal, empty effect all
    ({"key": "a", "value": "2"}, taint("a", "1"), False),
    ({"key": "a", "operator": "Exists"}, taint("a", "1"), True),
    ({"key": "b", "operator": "Exists"}, taint("a", "1"), False),
    ({"operator": "Exists"}, taint("anything", "x", "NoExecute"), True),  # empty key + Exists: everything
    ({"operator": "Exists", "effect": "NoExecute"}, taint("a", "1", "NoSchedule"), False),
    ({"key": "a", "operator": "Exists", "effect": "NoSchedule"}, taint("a", "", "NoSchedule"), True),
    ({"key": "a", "operator": "Equal"}, taint("a"), True),  # empty value equals empty value
    ({"key": "a", "operator": "Equal"}, taint("a", "1"), False),
    ({"key": "a", "operator": "Gt", "value": "1"}, taint("a", "5"), False),  # unknown operators never match
])
def test_tolerates(toleration: Obj, the_taint: Obj, expected: bool) -> None:
    assert tolerates(toleration, the_taint) is expected


def test_find_untolerated_taint_ignores_prefer_no_schedule_and_returns_first() -> None:
    taints = [taint("soft", "x", "PreferNoSchedule"), taint("a", "1"), taint("b", "2", "NoExecute")]
    assert find_untolerated_taint(taints, []) == taints[1]
    assert find_untolerated_taint(taints, [{"key": "a", "operator": "Exists"}]) == taints[2]
    assert find_untolerated_taint(taints, [{"operator": "Exists"}]) is None


@pytest.mark.parametrize(("taints", "tolerations", "reason"), [
    ([], [], None),
    ([taint("node-role", "master")], [], "node(s) had untolerated taint {node-role: master}"),
    ([taint("dedicated")], [], "node(s) had untolerated taint {dedicated: }"),
    ([taint("x", "y", "NoExecute")], [], "node(s) had untolerated taint {x: y}"),
    ([taint("x", "y", "PreferNoSchedule")], [], None),
    ([taint("node-role", "master")], [{"key": "node-role", "operator": "Exists", "effect": "NoSchedule"}], None),
    ([taint("a", "1"), taint("b", "2")], [{"key": "a", "value": "1"}], "node(s) had untolerated taint {b: 2}"),
    ([taint("a", "1"), taint("b", "2")], [{"operator": "Exists"}], None),
    ([taint("a", "1")], [{"key": "a", "value": "1", "effect": "NoExecute"}], "node(s) had untolerated taint {a: 1}"),
])
def test_filter(taints: list[Obj], tolerations: list[Obj], reason: str | None) -> None:
    plugin = TaintToleration({}, None)
    status = plugin.filter(CycleState(), make_pod(*tolerations), make_node("n1", *taints))
    if reason is None:
        assert status is None
    else:
        assert status is not None
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.reasons == (reason,)


def run_scores(plugin: TaintToleration, pod: PodInfo, nodes: list[NodeInfo]) -> dict[str, dict[str, int]]:
    state = CycleState()
    assert plugin.pre_score(state, pod, nodes) is None
    scores = [NodeScore(n.name, plugin.score(state, pod, n)) for n in nodes]
    raw = {s.name: s.score for s in scores}
    plugin.normalize_score(state, pod, scores)
    return {"raw": raw, "normalized": {s.name: s.score for s in scores}}


def test_score_counts_intolerable_prefer_no_schedule_and_reverses() -> None:
    nodes = [
        make_node("clean"),
        make_node("one", taint("a", "1", "PreferNoSchedule"), taint("hard", "x", "NoSchedule")),
        make_node("two", taint("a", "1", "PreferNoSchedule"), taint("b", "2", "PreferNoSchedule")),
        make_node("tolerated", taint("c", "3", "PreferNoSchedule")),
    ]
    pod = make_pod({"key": "c", "operator": "Exists", "effect": "PreferNoSchedule"},
                   {"key": "hard", "operator": "Exists", "effect": "NoSchedule"})  # NoSchedule ones don't count
    result = run_scores(TaintToleration({}, None), pod, nodes)
    assert result["raw"] == {"clean": 0, "one": 1, "two": 2, "tolerated": 0}
    assert result["normalized"] == {"clean": 100, "one": 50, "two": 0, "tolerated": 100}


def test_score_all_zero_normalizes_to_max() -> None:
    result = run_scores(TaintToleration({}, None), make_pod(), [make_node("a"), make_node("b")])
    assert result["normalized"] == {"a": 100, "b": 100}


def test_score_empty_effect_toleration_counts_for_prefer_no_schedule() -> None:
    nodes = [make_node("n", taint("a", "1", "PreferNoSchedule"))]
    result = run_scores(TaintToleration({}, None), make_pod({"key": "a", "operator": "Exists"}), nodes)
    assert result["raw"] == {"n": 0}


def test_score_without_pre_score_state_falls_back() -> None:
    plugin = TaintToleration({}, None)
    assert plugin.score(CycleState(), make_pod(), make_node("n", taint("a", "1", "PreferNoSchedule"))) == 1


def test_events_to_register() -> None:
    events = TaintToleration({}, None).events_to_register()
    assert ClusterEvent("Node", "Add") in events
    assert ClusterEvent("Node", "UpdateNodeTaint") in events
    assert ClusterEvent("Pod", "UpdatePodToleration") in events
