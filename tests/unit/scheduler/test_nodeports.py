"""NodePorts: host port conflicts (protocol, port, overlapping host IP) and the skip for pods without host ports."""

from __future__ import annotations

import pytest

from scheduler.framework import ClusterEvent, Code, CycleState, NodeInfo, PodInfo
from scheduler.plugins.nodeports import ERR_REASON, PRE_FILTER_KEY, NodePorts


def port(host_port: int, protocol: str | None = None, host_ip: str | None = None, container_port: int = 80) -> dict:
    p: dict = {"containerPort": container_port, "hostPort": host_port}
    if protocol:
        p["protocol"] = protocol
    if host_ip:
        p["hostIP"] = host_ip
    return p


def pod(name: str, *ports: dict) -> PodInfo:
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": name},
                    "spec": {"containers": [{"name": "c", "image": "app", "ports": list(ports)}]}})


def node(*pods: PodInfo) -> NodeInfo:
    info = NodeInfo({"metadata": {"name": "n1"}, "status": {"allocatable": {"pods": "110"}}})
    for p in pods:
        info.add_pod(p)
    return info


CASES = [
    ("empty node", pod("p", port(8080)), node(), True),
    ("same port, both wildcard", pod("p", port(8080)), node(pod("old", port(8080))), False),
    ("other port", pod("p", port(8080)), node(pod("old", port(8081))), True),
    ("other protocol", pod("p", port(53, "UDP")), node(pod("old", port(53, "TCP"))), True),
    ("same protocol UDP", pod("p", port(53, "UDP")), node(pod("old", port(53, "UDP"))), False),
    ("protocol defaults to TCP", pod("p", port(53, "TCP")), node(pod("old", port(53))), False),
    ("different specific IPs", pod("p", port(80, host_ip="10.0.0.1")), node(pod("old", port(80, host_ip="10.0.0.2"))),
     True),
    ("same specific IP", pod("p", port(80, host_ip="10.0.0.1")), node(pod("old", port(80, host_ip="10.0.0.1"))),
     False),
    ("specific IP vs existing wildcard", pod("p", port(80, host_ip="10.0.0.1")), node(pod("old", port(80))), False),
    ("wildcard vs existing specific IP", pod("p", port(80)), node(pod("old", port(80, host_ip="10.0.0.1"))), False),
    ("explicit 0.0.0.0 is the wildcard", pod("p", port(80, host_ip="0.0.0.0")),
     node(pod("old", port(80, host_ip="10.0.0.1"))), False),
    ("one of several ports conflicts", pod("p", port(1), port(2)), node(pod("old", port(3)), pod("o2", port(2))),
     False),
    ("container ports without host ports never conflict", pod("p", port(8080)),
     node(pod("old", {"containerPort": 8080})), True),
]


@pytest.mark.parametrize(("pod_info", "node_info", "fits"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter(pod_info, node_info, fits):
    plugin = NodePorts({}, None)
    state = CycleState()
    result, status = plugin.pre_filter(state, pod_info, [node_info])
    assert result is None and status is None
    for s in (state, CycleState()):  # with PreFilter's state and without it
        verdict = plugin.filter(s, pod_info, node_info)
        if fits:
            assert verdict is None
        else:
            assert verdict is not None
            assert verdict.code == Code.UNSCHEDULABLE
            assert verdict.reasons == (ERR_REASON,) == ("node(s) didn't have free ports for the requested pod ports",)


def test_pod_without_host_ports_skips():
    state = CycleState()
    result, status = NodePorts({}, None).pre_filter(state, pod("p", {"containerPort": 80}), [])
    assert result is None
    assert status is not None and status.code == Code.SKIP
    assert state.get(PRE_FILTER_KEY) is None


def test_pre_filter_stores_the_ports():
    state = CycleState()
    NodePorts({}, None).pre_filter(state, pod("p", port(80, "UDP", "10.0.0.1")), [])
    (stored,) = state.read(PRE_FILTER_KEY)
    assert (stored.ip, stored.protocol, stored.port) == ("10.0.0.1", "UDP", 80)


def test_events_to_register():
    assert NodePorts({}, None).events_to_register() == [ClusterEvent("Pod", "Delete"), ClusterEvent("Node", "Add")]
