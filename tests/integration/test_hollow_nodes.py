"""Hollow nodes against the session's real API server: registered Ready, leases renewed, pods run and go.

The fleet gets a unique name prefix and label, and a NoSchedule taint, so the schedulers other tests
run against the same API server never place their pods here; the nodes and their leases are deleted
at the end.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from kubemini.process import HollowNodesProcess
from tests.support import wait_for

NODES = 20
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


@pytest.fixture
def fleet(api, kubeconfig, tmp_path):
    run = uuid.uuid4().hex[:6]
    prefix = f"hollow-{run}-"
    proc = HollowNodesProcess(kubeconfig, tmp_path, extra_args=[
        "--nodes", str(NODES), "--name-prefix", prefix, "--node-labels", f"hollow-test={run}",
        "--node-taints", "kubemini.io/hollow-test=true:NoSchedule", "--node-lease-duration-seconds", "4"])
    names = [f"{prefix}{i}" for i in range(NODES)]
    try:
        proc.start(timeout=60)
        yield proc, run, names
    finally:
        proc.stop()
        for name in names:
            api.delete(f"/api/v1/nodes/{name}")
            api.delete(f"{LEASES}/{name}")


def test_hollow_nodes_register_heartbeat_and_run_pods(fleet, api, kubectl, namespace):
    proc, run, names = fleet

    # every node is in kubectl get nodes, Ready
    listed = json.loads(kubectl("get", "nodes", "-l", f"hollow-test={run}", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in listed) == sorted(names)
    for node in listed:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    table = kubectl("get", "nodes", "-l", f"hollow-test={run}", "--no-headers").splitlines()
    assert len(table) == NODES and all(line.split()[1] == "Ready" for line in table), table

    # each node's lease exists and is renewed (every second with a 4 s lease)
    def renew_times() -> dict[str, str]:
        resp = api.get(LEASES)
        assert resp.status_code == 200, resp.text
        return {item["metadata"]["name"]: item["spec"]["renewTime"] for item in resp.json()["items"]
                if item["metadata"]["name"] in names}

    first = renew_times()
    assert sorted(first) == sorted(names)
    wait_for(lambda: all(now > first[name] for name, now in renew_times().items()), timeout=10,
             message="every lease renewed")

    # a pod bound to a hollow node becomes Running and Ready with a pod IP
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hollow-pod", "namespace": namespace},
           "spec": {"nodeName": names[5], "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert resp.status_code == 201, resp.text

    def running() -> dict | None:
        status = api.get(f"/api/v1/namespaces/{namespace}/pods/hollow-pod").json().get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or ())
        return status if ready and status.get("phase") == "Running" and status.get("podIP") else None

    status = wait_for(running, timeout=10, message="the pod Running and Ready")
    assert status["podIP"].startswith("10.0.5.")  # from node 5's fake /24
    assert status["hostIP"] == "10.128.0.6"
    assert status["containerStatuses"][0]["containerID"].startswith("hollow://")
    wide = kubectl("get", "pod", "hollow-pod", "-n", namespace, "-o", "wide", "--no-headers").split()
    assert wide[1:3] == ["1/1", "Running"] and names[5] in wide

    # deleting it with the default grace period: the hollow kubelet finishes the deletion at once
    started = time.monotonic()
    kubectl("delete", "pod", "hollow-pod", "-n", namespace, "--timeout=20s")
    assert time.monotonic() - started < 10
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/hollow-pod").status_code == 404

    metrics = api.get(proc.url + "/metrics").text
    assert f"hollow_nodes_registered {NODES}.0" in metrics
    assert "hollow_pod_status_writes_total 1.0" in metrics
