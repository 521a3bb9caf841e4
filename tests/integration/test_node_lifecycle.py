"""Node lifecycle controller against a real API server: a node whose Lease stops being renewed becomes Unknown
and tainted within the grace period, its intolerant pods are evicted, tolerating ones stay, and it recovers.

The test runs its own controller-manager (``--controllers nodelifecycle``) with a 2 s grace period through
``KUBEMINI_NODE_MONITOR_GRACE_PERIOD``; the session controller-manager, should it run, has the default 40 s,
far longer than this test. Each test's nodes carry a zone of their own, with one healthy neighbour so the
zone is not "fully disrupted" (where Kubernetes stops evicting).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from controllers.nodelifecycle.controller import GRACE_ENV
from kubemini.process import ControllerManagerProcess
from tests.support import wait_for

GRACE = 2.0
TIMEOUT = 15
MERGE = {"Content-Type": "application/merge-patch+json"}
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def stamp(micro: bool = False) -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else now.strftime("%Y-%m-%dT%H:%M:%SZ")


class LeaseRenewer:
    """Renews ``kube-node-lease/<node>`` every 0.3 s for the nodes in ``renewing`` (a thread, like kubelets)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.renewing: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="lease-renewer")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()

    def renew(self, node: str) -> None:
        body = {"metadata": {"name": node},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": stamp(micro=True)}}
        resp = self.client.get(f"{LEASES}/{node}")
        if resp.status_code == 404:
            self.client.post(LEASES, json=body).raise_for_status()
            return
        lease = resp.json()
        lease["spec"].update(body["spec"])
        self.client.put(f"{LEASES}/{node}", json=lease)  # a conflict is retried on the next round

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            for node in list(self.renewing):
                try:
                    self.renew(node)
                except httpx.HTTPError:
                    pass


class Nodes:
    def __init__(self, api: httpx.Client, renewer: LeaseRenewer) -> None:
        self.api, self.renewer = api, renewer
        self.zone = "zone-" + uuid.uuid4().hex[:8]
        self.names: list[str] = []

    def add(self, name: str, ready: str = "True") -> str:
        name = f"{name}-{self.zone}"
        body = {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": self.zone, "nodelifecycle": "t"}}}
        assert self.api.post("/api/v1/nodes", json=body).status_code == 201
        self.names.append(name)
        self.set_ready(name, ready)
        self.renewer.renew(name)
        self.renewer.renewing.add(name)
        return name

    def set_ready(self, name: str, ready: str) -> None:
        now = stamp()
        status = {"status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                             "message": "test", "lastHeartbeatTime": now,
                                             "lastTransitionTime": now}]}}
        resp = self.api.patch(f"/api/v1/nodes/{name}/status", json=status, headers=MERGE)
        assert resp.status_code == 200, resp.text

    def get(self, name: str) -> dict:
        return self.api.get(f"/api/v1/nodes/{name}").json()

    def taints(self, name: str) -> set[tuple[str, str]]:
        return {(t["key"], t["effect"]) for t in self.get(name).get("spec", {}).get("taints") or ()}

    def ready(self, name: str) -> dict:
        return next(c for c in self.get(name)["status"]["conditions"] if c["type"] == "Ready")

    def cleanup(self) -> None:
        self.renewer.renewing.clear()
        for name in self.names:
            self.api.delete(f"/api/v1/nodes/{name}")
            self.api.delete(f"{LEASES}/{name}")


@pytest.fixture
def lifecycle_manager(kubeconfig, tmp_path, monkeypatch):
    monkeypatch.setenv(GRACE_ENV, str(GRACE))
    proc = ControllerManagerProcess(kubeconfig, tmp_path, extra_args=["--controllers", "nodelifecycle"])
    proc.start()
    monkeypatch.delenv(GRACE_ENV)
    yield proc
    proc.stop()


@pytest.fixture
def nodes(api, apiserver, lifecycle_manager):
    renewer = LeaseRenewer(apiserver.url)
    renewer.start()
    created = Nodes(api, renewer)
    yield created
    created.cleanup()
    renewer.stop()


def make_pod(api: httpx.Client, namespace: str, name: str, node: str, tolerations: list | None = None) -> None:
    pod = {"metadata": {"name": name},
           "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}],
                    **({"tolerations": tolerations} if tolerations else {})}}
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert resp.status_code == 201, resp.text


def evicted(api: httpx.Client, namespace: str, name: str) -> bool:
    resp = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    if resp.status_code == 404:
        return True
    pod = resp.json()
    disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
                    for c in pod.get("status", {}).get("conditions") or ())
    return disrupted and bool(pod["metadata"].get("deletionTimestamp"))


def test_a_node_that_stops_renewing_its_lease_is_tainted_and_evicted_then_recovers(api, namespace, nodes):
    lost = nodes.add("lost")
    nodes.add("healthy")
    make_pod(api, namespace, "short", lost,
             tolerations=[{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}])
    make_pod(api, namespace, "tolerant", lost,
             tolerations=[{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}])
    make_pod(api, namespace, "plain", lost)  # admission gives it the default 300 s tolerations
    defaults = api.get(f"/api/v1/namespaces/{namespace}/pods/plain").json()["spec"]["tolerations"]
    assert {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300} in defaults
    # renewed well past the grace period: nothing happens
    started = time.monotonic()
    while time.monotonic() - started < GRACE * 1.5:
        assert nodes.ready(lost)["status"] == "True"
        assert nodes.taints(lost) == set()
        time.sleep(0.1)
    nodes.renewer.renewing.discard(lost)

    wait_for(lambda: nodes.ready(lost)["status"] == "Unknown", TIMEOUT, message="Ready Unknown")
    ready = nodes.ready(lost)
    assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
    wait_for(lambda: {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")} <= nodes.taints(lost), TIMEOUT,
             message="unreachable taints")
    wait_for(lambda: evicted(api, namespace, "short"), TIMEOUT, message="the pod tolerating 1 s evicted")
    for name in ("tolerant", "plain"):  # forever, and 300 s
        pod = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}").json()
        assert not pod["metadata"].get("deletionTimestamp"), name
    assert nodes.ready(nodes.names[1])["status"] == "True"  # the neighbour kept renewing

    # the kubelet comes back: renewals plus a posted Ready status
    nodes.renewer.renewing.add(lost)
    nodes.set_ready(lost, "True")
    wait_for(lambda: not nodes.taints(lost), TIMEOUT, message="taints removed")
    assert not api.get(f"/api/v1/namespaces/{namespace}/pods/tolerant").json()["metadata"].get("deletionTimestamp")


def test_not_ready_taints_at_once_and_a_pod_not_tolerating_a_no_execute_taint_is_evicted(api, namespace, nodes):
    sick = nodes.add("sick")
    nodes.add("fine")
    make_pod(api, namespace, "intolerant", sick)
    make_pod(api, namespace, "tolerant", sick, tolerations=[{"key": "dedicated", "operator": "Exists"}])
    nodes.set_ready(sick, "False")
    wait_for(lambda: {(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")} <= nodes.taints(sick), TIMEOUT,
             message="not-ready taints")
    assert nodes.ready(sick)["status"] == "False"
    node = nodes.get(sick)
    node["spec"]["taints"].append({"key": "dedicated", "value": "x", "effect": "NoExecute"})
    assert api.put(f"/api/v1/nodes/{sick}", json=node).status_code == 200
    wait_for(lambda: evicted(api, namespace, "intolerant"), TIMEOUT, message="the intolerant pod evicted")
    assert not api.get(f"/api/v1/namespaces/{namespace}/pods/tolerant").json()["metadata"].get("deletionTimestamp")
