"""NodeName: spec.nodeName pins a pod to one node; other nodes are unresolvably unsuitable."""

from __future__ import annotations

import pytest

from scheduler.framework import ClusterEvent, Code, CycleState, NodeInfo, PodInfo, PreFilterResult
from scheduler.plugins.nodename import ERR_REASON, NodeName


def pod(node_name: str | None = None) -> PodInfo:
    spec: dict = {"containers": [{"name": "c", "image": "app"}]}
    if node_name is not None:
        spec["nodeName"] = node_name
    return PodInfo({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": spec})


def node(name: str) -> NodeInfo:
    return NodeInfo({"metadata": {"name": name}, "status": {"allocatable": {"pods": "110"}}})


@pytest.mark.parametrize(("pod_info", "node_name", "fits"), [
    (pod(), "n1", True),
    (pod(""), "n1", True),
    (pod("n1"), "n1", True),
    (pod("n2"), "n1", False),
    (pod("n1-suffix"), "n1", False),
])
def test_filter(pod_info, node_name, fits):
    status = NodeName({}, None).filter(CycleState(), pod_info, node(node_name))
    if fits:
        assert status is None
    else:
        assert status is not None
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.reasons == (ERR_REASON,) == ("node(s) didn't match the requested node name",)


@pytest.mark.parametrize(("pod_info", "expected"), [
    (pod(), None),
    (pod(""), None),
    (pod("n2"), PreFilterResult({"n2"})),
])
def test_pre_filter_narrows_to_the_named_node(pod_info, expected):
    result, status = NodeName({}, None).pre_filter(CycleState(), pod_info, [node("n1"), node("n2")])
    assert result == expected
    # a pod that names no node skips Filter altogether
    assert (status is not None and status.is_skip()) == (expected is None)


def test_events_to_register():
    assert NodeName({}, None).events_to_register() == [ClusterEvent("Node", "Add")]
