"""NodeAffinity: nodeSelector, required and preferred node affinity, addedAffinity, PreFilter's node names.

Each table row is a pod's rules against one node's labels; the verdicts, the exact reason strings and
the UNSCHEDULABLE_AND_UNRESOLVABLE code are what "0/N nodes are available" messages and preemption see.
"""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import ClusterEvent, Code, CycleState, NodeInfo, NodeScore, PodInfo, PreFilterResult
from scheduler.plugins.nodeaffinity import ERR_REASON_POD, NodeAffinity, RequiredNodeAffinity

Obj = dict[str, Any]


def make_node(name: str, **labels: str) -> NodeInfo:
    return NodeInfo({"metadata": {"name": name, "labels": dict(labels)}})


def make_pod(node_selector: dict[str, str] | None = None, required: list[Obj] | None = None,
             preferred: list[Obj] | None = None) -> PodInfo:
    spec: Obj = {"containers": [{"name": "c"}]}
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    node_affinity: Obj = {}
    if required is not None:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required}
    if preferred is not None:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    if node_affinity:
        spec["affinity"] = {"nodeAffinity": node_affinity}
    return PodInfo({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec})


def expr(key: str, operator: str, *values: str) -> Obj:
    result: Obj = {"key": key, "operator": operator}
    if values:
        result["values"] = list(values)
    return result


def term(*expressions: Obj, fields: list[Obj] | None = None) -> Obj:
    result: Obj = {}
    if expressions:
        result["matchExpressions"] = list(expressions)
    if fields:
        result["matchFields"] = fields
    return result


def name_in(*names: str) -> Obj:
    return {"key": "metadata.name", "operator": "In", "values": list(names)}


def run_filter(plugin: NodeAffinity, pod: PodInfo, node: NodeInfo) -> Any:
    state = CycleState()
    _, status = plugin.pre_filter(state, pod, [node])
    if status is not None and status.code == Code.SKIP:
        return "skip"
    if status is not None:
        return status
    return plugin.filter(state, pod, node)


NODE = {"zone": "a", "disk": "ssd", "gpus": "4", "kubernetes.io/os": "linux"}

FILTER_CASES = [
    # (description, pod, fits)
    ("nodeSelector matches", make_pod({"zone": "a", "disk": "ssd"}), True),
    ("nodeSelector value differs", make_pod({"zone": "b"}), False),
    ("nodeSelector label missing", make_pod({"rack": "1"}), False),
    ("In", make_pod(required=[term(expr("zone", "In", "a", "b"))]), True),
    ("In no value", make_pod(required=[term(expr("zone", "In", "c"))]), False),
    ("NotIn", make_pod(required=[term(expr("zone", "NotIn", "b"))]), True),
    ("NotIn excluded", make_pod(required=[term(expr("zone", "NotIn", "a"))]), False),
    ("NotIn missing label matches", make_pod(required=[term(expr("rack", "NotIn", "1"))]), True),
    ("Exists", make_pod(required=[term(expr("disk", "Exists"))]), True),
    ("Exists missing", make_pod(required=[term(expr("rack", "Exists"))]), False),
    ("DoesNotExist", make_pod(required=[term(expr("rack", "DoesNotExist"))]), True),
    ("DoesNotExist present", make_pod(required=[term(expr("disk", "DoesNotExist"))]), False),
    ("Gt", make_pod(required=[term(expr("gpus", "Gt", "3"))]), True),
    ("Gt equal fails", make_pod(required=[term(expr("gpus", "Gt", "4"))]), False),
    ("Lt", make_pod(required=[term(expr("gpus", "Lt", "5"))]), True),
    ("Lt fails", make_pod(required=[term(expr("gpus", "Lt", "4"))]), False),
    ("Gt non-numeric label", make_pod(required=[term(expr("zone", "Gt", "1"))]), False),
    ("expressions ANDed", make_pod(required=[term(expr("zone", "In", "a"), expr("disk", "In", "hdd"))]), False),
    ("terms ORed", make_pod(required=[term(expr("zone", "In", "b")), term(expr("disk", "In", "ssd"))]), True),
    ("empty terms list matches nothing", make_pod(required=[]), False),
    ("empty term matches nothing", make_pod(required=[{}]), False),
    ("invalid term ignored, other term matches",
     make_pod(required=[term(expr("zone", "Bogus", "a")), term(expr("zone", "In", "a"))]), True),
    ("invalid Gt value never matches", make_pod(required=[term(expr("gpus", "Gt", "x"))]), False),
    ("Exists with values is invalid", make_pod(required=[term(expr("zone", "Exists", "a"))]), False),
    ("matchFields name", make_pod(required=[term(fields=[name_in("n1")])]), True),
    ("matchFields other name", make_pod(required=[term(fields=[name_in("n2")])]), False),
    ("matchFields NotIn", make_pod(required=[term(fields=[{"key": "metadata.name", "operator": "NotIn",
                                                           "values": ["n1"]}])]), False),
    ("matchFields two values invalid", make_pod(required=[term(fields=[name_in("n1", "n2")])]), False),
    ("fields and labels ANDed", make_pod(required=[term(expr("zone", "In", "b"), fields=[name_in("n1")])]), False),
    ("nodeSelector AND affinity", make_pod({"zone": "a"}, [term(expr("disk", "In", "hdd"))]), False),
    ("nodeSelector AND affinity both ok", make_pod({"zone": "a"}, [term(expr("disk", "In", "ssd"))]), True),
]


@pytest.mark.parametrize(("description", "pod", "fits"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter(description: str, pod: PodInfo, fits: bool) -> None:
    result = run_filter(NodeAffinity({}, None), pod, make_node("n1", **NODE))
    if fits:
        assert result is None
    else:
        assert result is not None and result != "skip"
        assert result.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert result.reasons == (ERR_REASON_POD,)


def test_pre_filter_skips_pods_without_rules() -> None:
    assert run_filter(NodeAffinity({}, None), make_pod(), make_node("n1")) == "skip"


def test_pre_filter_does_not_skip_with_added_affinity() -> None:
    args = {"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term(expr("zone", "In", "a"))]}}}
    plugin = NodeAffinity(args, None)
    assert run_filter(plugin, make_pod(), make_node("n1", zone="a")) is None
    status = run_filter(plugin, make_pod(), make_node("n2", zone="b"))
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ("node(s) didn't match scheduler-enforced node affinity",)


def test_added_affinity_must_parse() -> None:
    args = {"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term(expr("zone", "Bogus", "a"))]}}}
    with pytest.raises(ValueError, match="addedAffinity"):
        NodeAffinity(args, None)


@pytest.mark.parametrize(("terms", "names", "conflict"), [
    ([term(fields=[name_in("n1")])], {"n1"}, False),
    ([term(fields=[name_in("n1")]), term(fields=[name_in("n2")])], {"n1", "n2"}, False),
    ([term(fields=[name_in("n1")]), term(expr("zone", "In", "a"))], None, False),  # a term without names
    ([term(fields=[name_in("n1"), name_in("n2")])], None, True),  # intersection empty in the only term
    ([term(expr("zone", "In", "a"), fields=[name_in("n1")])], {"n1"}, False),
])
def test_pre_filter_result_node_names(terms: list[Obj], names: set[str] | None, conflict: bool) -> None:
    state = CycleState()
    result, status = NodeAffinity({}, None).pre_filter(state, make_pod(required=terms), [])
    if conflict:
        assert status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.reasons == ("pod affinity terms conflict",)
    else:
        assert status is None
        assert result == (PreFilterResult(names) if names else None)


def test_filter_without_pre_filter_state_computes_it() -> None:
    plugin = NodeAffinity({}, None)
    pod = make_pod({"zone": "a"})
    state = CycleState()
    assert plugin.filter(state, pod, make_node("n1", zone="a")) is None
    assert plugin.filter(state, pod, make_node("n2", zone="b")).reasons == (ERR_REASON_POD,)


def test_required_node_affinity_helper() -> None:
    required = RequiredNodeAffinity(make_pod({"zone": "a"}, [term(expr("disk", "Exists"))]).pod)
    assert required.matches({"zone": "a", "disk": "x"}, "n")
    assert not required.matches({"zone": "a"}, "n")
    assert RequiredNodeAffinity(make_pod().pod).empty


def preferred(weight: int, *expressions: Obj) -> Obj:
    return {"weight": weight, "preference": term(*expressions)}


def scores_for(plugin: NodeAffinity, pod: PodInfo, nodes: list[NodeInfo]) -> tuple[Any, dict[str, int]]:
    state = CycleState()
    status = plugin.pre_score(state, pod, nodes)
    if status is not None:
        return status, {}
    scores = [NodeScore(n.name, plugin.score(state, pod, n)) for n in nodes]
    raw = {s.name: s.score for s in scores}
    plugin.normalize_score(state, pod, scores)
    return raw, {s.name: s.score for s in scores}


NODES = [make_node("a", zone="a", disk="ssd"), make_node("b", zone="b", disk="ssd"), make_node("c", zone="c")]


def test_score_sums_matching_weights_and_normalizes() -> None:
    pod = make_pod(preferred=[preferred(5, expr("zone", "In", "a")), preferred(3, expr("disk", "In", "ssd")),
                              preferred(0, expr("zone", "In", "c"))])  # zero weight ignored
    raw, normalized = scores_for(NodeAffinity({}, None), pod, NODES)
    assert raw == {"a": 8, "b": 3, "c": 0}
    assert normalized == {"a": 100, "b": 37, "c": 0}


def test_score_skipped_without_preferences() -> None:
    status, _ = scores_for(NodeAffinity({}, None), make_pod(), NODES)
    assert status.code == Code.SKIP


def test_score_all_zero_stays_zero() -> None:
    pod = make_pod(preferred=[preferred(5, expr("zone", "In", "z"))])
    _, normalized = scores_for(NodeAffinity({}, None), pod, NODES)
    assert normalized == {"a": 0, "b": 0, "c": 0}


def test_score_added_preferred_affinity() -> None:
    args = {"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        preferred(10, expr("zone", "In", "c"))]}}
    pod = make_pod(preferred=[preferred(5, expr("zone", "In", "a"))])
    raw, normalized = scores_for(NodeAffinity(args, None), pod, NODES)
    assert raw == {"a": 5, "b": 0, "c": 10}
    assert normalized == {"a": 50, "b": 0, "c": 100}
    raw, _ = scores_for(NodeAffinity(args, None), make_pod(), NODES)  # no pod preferences: not skipped
    assert raw == {"a": 0, "b": 0, "c": 10}


def test_score_invalid_preferred_term_is_an_error() -> None:
    pod = make_pod(preferred=[preferred(5, expr("zone", "Bogus", "a"))])
    status, _ = scores_for(NodeAffinity({}, None), pod, NODES)
    assert status.code == Code.ERROR


def test_events_to_register() -> None:
    events = NodeAffinity({}, None).events_to_register()
    assert events == [ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeLabel")]
