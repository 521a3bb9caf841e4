"""NodeResourcesBalancedAllocation: (1 - standard deviation of the requested fractions) * 100, as v1.35.

Covers the two-resource shortcut, the general formula with three resources, the cap at 1, real (not
non-zero) requests, resources left out, the best-effort skip and the args' validation.
"""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import Code, CycleState, NodeInfo, PodInfo
from scheduler.plugins.balancedallocation import PRE_SCORE_KEY, NodeResourcesBalancedAllocation, balanced_score


def pod(name: str = "p", requests: dict[str, str] | None = None) -> PodInfo:
    c: dict[str, Any] = {"name": "c", "image": "app"}
    if requests:
        c["resources"] = {"requests": requests}
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
                    "spec": {"containers": [c]}})


def node(allocatable: dict[str, str], *pods: PodInfo) -> NodeInfo:
    info = NodeInfo({"metadata": {"name": "n1"}, "status": {"allocatable": {"pods": "110", **allocatable}}})
    for p in pods:
        info.add_pod(p)
    return info


GPU_ARGS = {"resources": [{"name": "cpu"}, {"name": "memory"}, {"name": "example.com/gpu"}]}

CASES = [
    ("equal fractions", {}, pod(requests={"cpu": "1", "memory": "2Gi"}), node({"cpu": "4", "memory": "8Gi"}), 100),
    ("0.25 vs 0.5: std 0.125", {}, pod(requests={"cpu": "1", "memory": "2Gi"}), node({"cpu": "4", "memory": "4Gi"}),
     87),
    ("existing pods count: 0.6 vs 0.5", {}, pod(requests={"cpu": "3", "memory": "5Gi"}),
     node({"cpu": "10", "memory": "20Gi"}, pod("old", {"cpu": "3", "memory": "5Gi"})), 95),
    ("fraction capped at 1: 1 vs 0.5", {}, pod(requests={"cpu": "5", "memory": "2Gi"}),
     node({"cpu": "4", "memory": "4Gi"}), 75),
    ("real requests: no memory request is 0, not 200Mi", {}, pod(requests={"cpu": "1"}),
     node({"cpu": "4", "memory": "8Gi"}), 87),
    ("best-effort pods on the node add nothing", {}, pod(requests={"cpu": "1", "memory": "2Gi"}),
     node({"cpu": "4", "memory": "8Gi"}, pod("old")), 100),
    ("resource without allocatable is left out", {}, pod(requests={"cpu": "1", "memory": "2Gi"}),
     node({"cpu": "4"}), 100),
    ("three resources: 0.5, 0.25, 1.0", GPU_ARGS, pod(requests={"cpu": "2", "memory": "2Gi", "example.com/gpu": "2"}),
     node({"cpu": "4", "memory": "8Gi", "example.com/gpu": "2"}), 68),
    ("extended resource not requested is left out", GPU_ARGS, pod(requests={"cpu": "1", "memory": "2Gi"}),
     node({"cpu": "4", "memory": "4Gi", "example.com/gpu": "2"}), 87),
]


@pytest.mark.parametrize(("args", "pod_info", "node_info", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score(args, pod_info, node_info, expected):
    plugin = NodeResourcesBalancedAllocation(args, None)
    state = CycleState()
    assert plugin.pre_score(state, pod_info, [node_info]) is None
    assert plugin.score(state, pod_info, node_info) == expected
    assert plugin.score(CycleState(), pod_info, node_info) == expected  # PreScore skipped: same answer


def test_pre_score_keeps_real_requests():
    state = CycleState()
    NodeResourcesBalancedAllocation({}, None).pre_score(state, pod(requests={"cpu": "250m"}), [])
    assert state.read(PRE_SCORE_KEY) == (250, 0)


def test_best_effort_pod_skips():
    plugin = NodeResourcesBalancedAllocation({}, None)
    state = CycleState()
    status = plugin.pre_score(state, pod(), [])
    assert status is not None and status.code == Code.SKIP
    assert state.get(PRE_SCORE_KEY) is None
    assert plugin.score(CycleState(), pod(), node({"cpu": "4", "memory": "8Gi"})) == 0


@pytest.mark.parametrize(("amounts", "expected"), [
    ([], 100),
    ([(1, 4, 1)], 100),  # one fraction: no deviation
    ([(0, 4, 1), (4, 4, 1)], 50),
    ([(3, 4, 1), (1, 4, 1)], 75),
])
def test_balanced_score(amounts, expected):
    assert balanced_score(amounts) == expected


def test_default_resources():
    scorer = NodeResourcesBalancedAllocation({}, None).scorer
    assert (scorer.names, scorer.weights, scorer.use_requested) == (("cpu", "memory"), (1, 1), True)


@pytest.mark.parametrize("args", [
    {"resources": [{"name": "cpu", "weight": 2}]},
    {"resources": [{"name": "cpu"}, {"name": "cpu"}]},
])
def test_invalid_args(args):
    with pytest.raises(ValueError):
        NodeResourcesBalancedAllocation(args, None)


def test_score_only_plugin_registers_no_events():
    assert not hasattr(NodeResourcesBalancedAllocation({}, None), "events_to_register")
