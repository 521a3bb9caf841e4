"""The batch ``score_nodes`` paths must give exactly what ``score`` gives node by node."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.framework import CycleState, NodeInfo, PodInfo
from scheduler.plugins.balancedallocation import NodeResourcesBalancedAllocation
from scheduler.plugins.noderesources import NodeResourcesFit

amount = st.integers(min_value=0, max_value=64_000)


def node(i: int, cpu: int, memory: int, used_cpu: int, used_memory: int) -> NodeInfo:
    info = NodeInfo({"metadata": {"name": f"n{i}"},
                     "status": {"allocatable": {"cpu": f"{cpu}m", "memory": str(memory * 1024), "pods": "110"}}})
    info.add_pod(PodInfo({"metadata": {"name": f"p{i}", "namespace": "ns", "uid": f"u{i}"}, "spec": {"containers": [
        {"name": "c", "resources": {"requests": {"cpu": f"{used_cpu}m", "memory": str(used_memory * 1024)}}}]}}))
    return info


@given(st.lists(st.tuples(amount, amount, amount, amount), min_size=1, max_size=20), amount, amount,
       st.sampled_from([None, {"cpu": 3, "memory": 1}]))
def test_batch_scores_equal_per_node_scores(specs, pod_cpu, pod_memory, weights):
    nodes = [node(i, *spec) for i, spec in enumerate(specs)]
    pod = PodInfo({"metadata": {"name": "x", "namespace": "ns", "uid": "x"}, "spec": {"containers": [
        {"name": "c", "resources": {"requests": {"cpu": f"{pod_cpu}m", "memory": str(pod_memory * 1024)}}}]}})
    fit_args = {} if weights is None else {"scoringStrategy": {"type": "LeastAllocated", "resources": [
        {"name": name, "weight": weight} for name, weight in weights.items()]}}
    for plugin in (NodeResourcesFit(fit_args, None), NodeResourcesBalancedAllocation({}, None)):
        state = CycleState()
        status = plugin.pre_score(state, pod, nodes)
        if status is not None and status.is_skip():
            continue
        assert plugin.score_nodes(state, pod, nodes) == [plugin.score(state, pod, n) for n in nodes]


def test_taint_toleration_batch_scores_equal_scored_then_normalized():
    from scheduler.framework import NodeScore
    from scheduler.plugins.tainttoleration import TaintToleration
    plugin = TaintToleration({}, None)
    prefer = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    nodes = [NodeInfo({"metadata": {"name": f"n{i}"}, "spec": {"taints": [prefer] * i} if i else {},
                       "status": {"allocatable": {"cpu": "1"}}}) for i in range(4)]
    pod = PodInfo({"metadata": {"name": "x", "namespace": "ns", "uid": "x"}, "spec": {"containers": []}})
    for subset in (nodes[:1], nodes):
        state = CycleState()
        plugin.pre_score(state, pod, subset)
        scores = [NodeScore(n.name, plugin.score(state, pod, n)) for n in subset]
        plugin.normalize_score(state, pod, scores)
        assert plugin.score_nodes(state, pod, subset) == [s.score for s in scores]
