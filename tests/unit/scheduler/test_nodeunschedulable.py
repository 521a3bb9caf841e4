"""NodeUnschedulable: cordoned nodes reject pods unless they tolerate node.kubernetes.io/unschedulable:NoSchedule."""

from __future__ import annotations

import pytest

from scheduler.framework import ClusterEvent, Code, CycleState, NodeInfo, PodInfo
from scheduler.plugins.nodeunschedulable import ERR_REASON, NodeUnschedulable

KEY = "node.kubernetes.io/unschedulable"


def pod(*tolerations: dict) -> PodInfo:
    spec: dict = {"containers": [{"name": "c", "image": "app"}]}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    return PodInfo({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": spec})


def node(unschedulable: bool | None) -> NodeInfo:
    spec = {} if unschedulable is None else {"unschedulable": unschedulable}
    return NodeInfo({"metadata": {"name": "n1"}, "spec": spec, "status": {"allocatable": {"pods": "110"}}})


CASES = [
    ("schedulable node", pod(), node(None), True),
    ("unschedulable: false", pod(), node(False), True),
    ("cordoned", pod(), node(True), False),
    ("tolerates key and effect", pod({"key": KEY, "operator": "Exists", "effect": "NoSchedule"}), node(True), True),
    ("tolerates key, any effect", pod({"key": KEY, "operator": "Exists"}), node(True), True),
    ("tolerates everything", pod({"operator": "Exists"}), node(True), True),
    ("Equal with the empty value", pod({"key": KEY, "operator": "Equal", "effect": "NoSchedule"}), node(True), True),
    ("operator defaults to Equal", pod({"key": KEY}), node(True), True),
    ("Equal with another value", pod({"key": KEY, "operator": "Equal", "value": "x"}), node(True), False),
    ("other effect", pod({"key": KEY, "operator": "Exists", "effect": "NoExecute"}), node(True), False),
    ("other key", pod({"key": "node.kubernetes.io/not-ready", "operator": "Exists"}), node(True), False),
    ("one of several matches", pod({"key": "a", "operator": "Exists"}, {"key": KEY, "operator": "Exists"}),
     node(True), True),
]


@pytest.mark.parametrize(("pod_info", "node_info", "fits"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter(pod_info, node_info, fits):
    status = NodeUnschedulable({}, None).filter(CycleState(), pod_info, node_info)
    if fits:
        assert status is None
    else:
        assert status is not None
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.reasons == (ERR_REASON,) == ("node(s) were unschedulable",)


def test_events_to_register():
    assert NodeUnschedulable({}, None).events_to_register() == [
        ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeTaint")]
