"""NodeResourcesFit: the Filter's reasons and codes, its args, and the three scoring strategies' exact numbers.

Expected scores are worked out by hand from Kubernetes' formulas (integer arithmetic), so a change in
rounding or in which "requested" is used shows up here.
"""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.framework import ClusterEvent, Code, CycleState, NodeInfo, PodInfo
from scheduler.plugins.noderesources import (
    PRE_FILTER_KEY,
    PRE_SCORE_KEY,
    NodeResourcesFit,
    broken_linear,
    is_extended_resource_name,
    least_allocated,
    most_allocated,
    parse_shape,
    requested_to_capacity_ratio,
)

Mi = 1024 * 1024
Gi = 1024 * Mi


def container(requests: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "app"}
    if requests is not None:
        c["resources"] = {"requests": requests}
    c.update(extra)
    return c


def pod(name: str = "p", requests: dict[str, str] | None = None, *, init: list[dict] | None = None,
        containers: list[dict] | None = None) -> PodInfo:
    spec: dict[str, Any] = {"containers": containers if containers is not None else [container(requests)]}
    if init:
        spec["initContainers"] = init
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec})


def node(allocatable: dict[str, str], *pods: PodInfo, name: str = "n1") -> NodeInfo:
    info = NodeInfo({"metadata": {"name": name}, "status": {"allocatable": allocatable}})
    for p in pods:
        info.add_pod(p)
    return info


STD = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "10Gi", "pods": "110"}


def run_filter(plugin: NodeResourcesFit, pod_info: PodInfo, node_info: NodeInfo):
    state = CycleState()
    result, status = plugin.pre_filter(state, pod_info, [node_info])
    assert result is None and status is None
    return plugin.filter(state, pod_info, node_info)


# --- Filter ---------------------------------------------------------------------------------------------

FILTER_CASES = [
    ("fits", {}, pod(requests={"cpu": "1", "memory": "1Gi"}), node(STD), ()),
    ("exactly fills the node", {}, pod(requests={"cpu": "3", "memory": "7Gi"}),
     node(STD, pod("old", {"cpu": "1", "memory": "1Gi"})), ()),
    ("insufficient cpu", {}, pod(requests={"cpu": "1"}), node(STD, pod("old", {"cpu": "3500m"})),
     ("Insufficient cpu",)),
    ("insufficient cpu and memory, separate reasons", {}, pod(requests={"cpu": "5", "memory": "9Gi"}), node(STD),
     ("Insufficient cpu", "Insufficient memory")),
    ("insufficient ephemeral storage", {}, pod(requests={"ephemeral-storage": "11Gi"}), node(STD),
     ("Insufficient ephemeral-storage",)),
    ("too many pods even for a best-effort pod", {}, pod(), node({**STD, "pods": "1"}, pod("old")),
     ("Too many pods",)),
    ("node without a pods allocatable takes none", {}, pod(), node({"cpu": "4", "memory": "8Gi"}),
     ("Too many pods",)),
    ("too many pods comes first", {}, pod(requests={"cpu": "5"}), node({**STD, "pods": "1"}, pod("old")),
     ("Too many pods", "Insufficient cpu")),
    ("best-effort pod fits a fully requested node", {}, pod(), node(STD, pod("old", {"cpu": "4", "memory": "8Gi"})),
     ()),
    ("memory-only pod ignores a full cpu", {}, pod(requests={"memory": "1Gi"}), node(STD, pod("old", {"cpu": "4"})),
     ()),
    ("extended resource missing on the node", {}, pod(requests={"example.com/gpu": "1"}), node(STD),
     ("Insufficient example.com/gpu",)),
    ("extended resource used up", {}, pod(requests={"example.com/gpu": "2"}),
     node({**STD, "example.com/gpu": "2"}, pod("old", {"example.com/gpu": "1"})),
     ("Insufficient example.com/gpu",)),
    ("extended resources in name order", {}, pod(requests={"z.io/b": "1", "a.io/a": "1"}), node(STD),
     ("Insufficient a.io/a", "Insufficient z.io/b")),
    ("ignoredResources", {"ignoredResources": ["example.com/gpu"]}, pod(requests={"example.com/gpu": "1"}),
     node(STD), ()),
    ("ignoredResourceGroups", {"ignoredResourceGroups": ["example.com"]},
     pod(requests={"example.com/gpu": "1", "other.io/x": "1"}), node(STD), ("Insufficient other.io/x",)),
    ("hugepages are native, never ignored", {"ignoredResources": ["hugepages-2Mi"]},
     pod(requests={"hugepages-2Mi": "4Mi"}), node({**STD, "hugepages-2Mi": "2Mi"}), ("Insufficient hugepages-2Mi",)),
    ("init container peak counts", {}, pod(requests={"cpu": "1"}, init=[container({"cpu": "5"}, name="i")]),
     node(STD), ("Insufficient cpu",)),
    ("sidecar adds to the containers", {},
     pod(requests={"cpu": "3"}, init=[container({"cpu": "1500m"}, name="s", restartPolicy="Always")]),
     node(STD), ("Insufficient cpu",)),
]


@pytest.mark.parametrize(("args", "pod_info", "node_info", "reasons"),
                         [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_filter(args, pod_info, node_info, reasons):
    status = run_filter(NodeResourcesFit(args, None), pod_info, node_info)
    if not reasons:
        assert status is None
    else:
        assert status is not None
        assert status.code == Code.UNSCHEDULABLE
        assert status.reasons == reasons


def test_pre_filter_stores_state_under_its_key():
    state = CycleState()
    NodeResourcesFit({}, None).pre_filter(state, pod(requests={"cpu": "250m", "example.com/gpu": "1"}), [])
    request = state.read(PRE_FILTER_KEY)
    assert (request.milli_cpu, request.memory, request.scalars) == (250, 0, (("example.com/gpu", 1),))


def test_filter_without_pre_filter_state_still_decides():
    plugin = NodeResourcesFit({}, None)
    assert plugin.filter(CycleState(), pod(requests={"cpu": "5"}), node(STD)).reasons == ("Insufficient cpu",)


@pytest.mark.parametrize(("name", "extended"), [
    ("example.com/gpu", True), ("nvidia.com/gpu", True), ("cpu", False), ("hugepages-2Mi", False),
    ("kubernetes.io/something", False), ("requests.example.com/x", False),
])
def test_is_extended_resource_name(name, extended):
    assert is_extended_resource_name(name) is extended


# --- args -----------------------------------------------------------------------------------------------


def test_default_args():
    plugin = NodeResourcesFit({}, None)
    assert plugin.scoring_type == "LeastAllocated"
    assert plugin.scorer.names == ("cpu", "memory")
    assert plugin.scorer.weights == (1, 1)
    assert plugin.scorer.use_requested is False
    assert plugin.scorer.scorer is least_allocated


def test_missing_resources_and_zero_weights_default():
    plugin = NodeResourcesFit({"scoringStrategy": {"type": "MostAllocated", "resources": []}}, None)
    assert (plugin.scorer.names, plugin.scorer.weights) == (("cpu", "memory"), (1, 1))
    assert plugin.scorer.scorer is most_allocated
    plugin = NodeResourcesFit({"scoringStrategy": {"resources": [{"name": "cpu", "weight": 0}]}}, None)
    assert (plugin.scorer.names, plugin.scorer.weights) == (("cpu",), (1,))


@pytest.mark.parametrize("args", [
    {"scoringStrategy": {"type": "Fancy"}},
    {"scoringStrategy": {"resources": [{"name": "cpu", "weight": 101}]}},
    {"scoringStrategy": {"resources": [{"name": "cpu", "weight": -1}]}},
    {"scoringStrategy": {"resources": [{"name": "cpu"}, {"name": "cpu"}]}},
    {"scoringStrategy": {"resources": [{"weight": 1}]}},
    {"scoringStrategy": {"type": "RequestedToCapacityRatio"}},
    {"scoringStrategy": {"type": "RequestedToCapacityRatio",
                         "requestedToCapacityRatio": {"shape": [{"utilization": 50, "score": 1},
                                                                {"utilization": 50, "score": 2}]}}},
    {"scoringStrategy": {"type": "RequestedToCapacityRatio",
                         "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 11}]}}},
    {"scoringStrategy": {"type": "RequestedToCapacityRatio",
                         "requestedToCapacityRatio": {"shape": [{"utilization": 101, "score": 1}]}}},
    {"ignoredResourceGroups": ["example.com/gpu"]},
])
def test_invalid_args(args):
    with pytest.raises(ValueError):
        NodeResourcesFit(args, None)


def test_events_to_register():
    assert NodeResourcesFit({}, None).events_to_register() == [
        ClusterEvent("Pod", "Delete"), ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeAllocatable")]


# --- Score ----------------------------------------------------------------------------------------------


def run_score(args: dict, pod_info: PodInfo, node_info: NodeInfo) -> int:
    plugin = NodeResourcesFit(args, None)
    state = CycleState()
    assert plugin.pre_score(state, pod_info, [node_info]) is None
    score = plugin.score(state, pod_info, node_info)
    assert plugin.score(CycleState(), pod_info, node_info) == score  # without PreScore: same answer
    return score


SMALL = {"cpu": "4", "memory": "10000Mi", "pods": "110"}
WIDE = {"cpu": "6", "memory": "10000Mi", "pods": "110"}
BIG = pod(requests={"cpu": "3", "memory": "5000Mi"})
LINEAR = {"type": "RequestedToCapacityRatio",
          "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}
SPREAD = {"type": "RequestedToCapacityRatio",
          "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}
GPU = [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}, {"name": "example.com/gpu", "weight": 1}]

SCORE_CASES = [
    # LeastAllocated: (alloc - req) * 100 // alloc per resource, then the weighted mean with //
    ("least: cpu 25, memory 50", {}, BIG, node(SMALL), (25 + 50) // 2),
    ("least: cpu 50, memory 50", {}, BIG, node(WIDE), 50),
    ("least: weights 3:1", {"scoringStrategy": {"resources": [{"name": "cpu", "weight": 3},
                                                              {"name": "memory", "weight": 1}]}},
     BIG, node(SMALL), (25 * 3 + 50) // 4),
    ("least: existing pods count", {}, pod(requests={"cpu": "1", "memory": "2000Mi"}),
     node(SMALL, pod("old", {"cpu": "1", "memory": "2000Mi"})), (50 + 60) // 2),
    ("least: best-effort pods count 100m/200Mi", {}, pod(), node({"cpu": "4", "memory": "8Gi", "pods": "110"},
                                                                pod("old")), (95 + 95) // 2),
    ("least: over capacity scores 0 for that resource", {}, pod(requests={"cpu": "5", "memory": "5000Mi"}),
     node(SMALL), (0 + 50) // 2),
    ("least: extended resource not requested is left out",
     {"scoringStrategy": {"resources": GPU}}, BIG, node({**SMALL, "example.com/gpu": "4"}), (25 + 50) // 2),
    ("least: extended resource requested", {"scoringStrategy": {"resources": GPU}},
     pod(requests={"cpu": "3", "memory": "5000Mi", "example.com/gpu": "1"}),
     node({**SMALL, "example.com/gpu": "4"}), (25 + 50 + 75) // 3),
    ("least: node without the extended resource", {"scoringStrategy": {"resources": GPU}},
     pod(requests={"cpu": "3", "memory": "5000Mi", "example.com/gpu": "1"}), node(SMALL), (25 + 50) // 2),
    ("least: node with no allocatable at all", {}, BIG, node({"pods": "110"}), 0),
    # MostAllocated: req * 100 // alloc, requests above allocatable count as allocatable
    ("most: cpu 75, memory 50", {"scoringStrategy": {"type": "MostAllocated"}}, BIG, node(SMALL), (75 + 50) // 2),
    ("most: over capacity caps at 100", {"scoringStrategy": {"type": "MostAllocated"}},
     pod(requests={"cpu": "5", "memory": "5000Mi"}), node(SMALL), (100 + 50) // 2),
    # RequestedToCapacityRatio: shape scores 0..10 scaled to 0..100, mean rounded half away from zero
    ("ratio: linear, 62.5 rounds up", {"scoringStrategy": LINEAR}, BIG, node(SMALL), 63),
    ("ratio: spread shape, 37.5 rounds up", {"scoringStrategy": SPREAD}, BIG, node(SMALL), 38),
    ("ratio: over capacity is utilization 100, a 0 score leaves the mean", {"scoringStrategy": SPREAD},
     pod(requests={"cpu": "5", "memory": "5000Mi"}), node(SMALL), 50),
]


@pytest.mark.parametrize(("args", "pod_info", "node_info", "expected"),
                         [c[1:] for c in SCORE_CASES], ids=[c[0] for c in SCORE_CASES])
def test_score(args, pod_info, node_info, expected):
    assert run_score(args, pod_info, node_info) == expected


def test_pre_score_uses_non_zero_requests():
    state = CycleState()
    NodeResourcesFit({}, None).pre_score(state, pod(requests={"cpu": "250m"}), [])
    assert state.read(PRE_SCORE_KEY) == (250, 200 * Mi)


@pytest.mark.parametrize(("shape", "utilization", "expected"), [
    (((0, 0), (100, 100)), 75, 75),
    (((0, 100), (30, 0)), 10, 67),  # 100 + trunc(-1000 / 30): Go truncates toward zero, not down
    (((0, 100), (30, 0)), 50, 0),  # flat after the last point
    (((20, 50), (80, 100)), 10, 50),  # flat before the first point
    (((20, 50), (80, 100)), 50, 75),
    (((0, 0), (50, 100), (100, 0)), 75, 50),
])
def test_broken_linear(shape, utilization, expected):
    assert broken_linear(shape, utilization) == expected


def test_ratio_leaves_zero_scores_out_of_the_mean():
    scorer = requested_to_capacity_ratio(parse_shape([{"utilization": 0, "score": 0},
                                                      {"utilization": 100, "score": 10}]))
    assert scorer([(0, 4000, 1), (5000, 10000, 1)]) == 50  # not (0 + 50) / 2
    assert scorer([(0, 4000, 1)]) == 0


def test_parse_shape_scales_scores():
    assert parse_shape([{"utilization": 0, "score": 1}, {"utilization": 100, "score": 10}]) == ((0, 10), (100, 100))
