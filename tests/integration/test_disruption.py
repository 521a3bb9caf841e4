"""PodDisruptionBudgets against the real API server and the session controller-manager.

The disruption controller keeps the budget's status; the API server's ``pods/eviction`` consults it;
``kubectl drain`` evicts through it. No kubelet runs here: a :class:`PodSimulator` marks pods Running and
Ready (and is held to keep a replacement pod not ready), and the pods have a zero termination grace
period so an evicted pod is gone at once instead of waiting for a kubelet to confirm its end.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from tests.integration.podsim import PodSimulator
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

TIMEOUT = 15
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


@pytest.fixture
def node(api):
    name = "drain-node-" + uuid.uuid4().hex[:8]
    assert api.post("/api/v1/nodes", json={"metadata": {"name": name, "labels": {"test": "disruption"}}}) \
        .status_code == 201
    yield name
    api.delete(f"/api/v1/nodes/{name}")


def pdb_status(api, namespace: str, name: str) -> dict:
    resp = api.get(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{name}")
    resp.raise_for_status()
    return resp.json().get("status") or {}


def live_pods(api, namespace: str) -> dict[str, dict]:
    items = api.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "app=drain"}).json()["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def evict(api, namespace: str, name: str):
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
    return api.post(f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", json=body)


def replica_set(name: str, node: str) -> dict:
    labels = {"app": "drain"}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "app", "image": "nginx"}]}}}}


def test_budget_status_follows_pods(api, namespace):
    """A bare-pod budget with minAvailable 1: expected = pods, allowed = ready - 1."""
    pdb = {"metadata": {"name": "solo"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "solo"}}}}
    assert api.post(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", json=pdb).status_code == 201
    wait_for(lambda: pdb_status(api, namespace, "solo").get("observedGeneration") == 1, TIMEOUT, message="synced")
    status = pdb_status(api, namespace, "solo")
    assert (status["expectedPods"], status["disruptionsAllowed"]) == (0, 0)
    with PodSimulator(api.base_url, namespace):
        for name in ("s1", "s2"):
            pod = {"metadata": {"name": name, "labels": {"app": "solo"}},
                   "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
            assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201

        def settled():
            s = pdb_status(api, namespace, "solo")
            return s if (s.get("currentHealthy"), s.get("disruptionsAllowed")) == (2, 1) else None

        status = wait_for(settled, TIMEOUT, message="two healthy pods")
    assert (status["expectedPods"], status["desiredHealthy"]) == (2, 1)
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == \
        ("DisruptionAllowed", "True", "SufficientPods")


def test_drain_honours_min_available(api, kubectl, namespace, node):
    """minAvailable 2 of 3 ready pods: one eviction goes through, the next get 429 until pods become ready.

    The API server answers a refused eviction with Retry-After: 10, so client-go retries inside kubectl in
    10 s steps (and kubectl prints no "will retry" line): to stay within --timeout=20s the test makes two
    more pods ready at once (scaling to 4) so both remaining evictions pass on the first retry. The
    drain's own 429s are seen in its -v=6 request log."""
    pdb = {"metadata": {"name": "drain-pdb"},
           "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "drain"}}}}
    assert api.post(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", json=pdb).status_code == 201
    with PodSimulator(api.base_url, namespace) as sim:
        resp = api.post(f"/apis/apps/v1/namespaces/{namespace}/replicasets", json=replica_set("web", node))
        assert resp.status_code == 201, resp.text
        wait_for(lambda: sum(map(is_ready, live_pods(api, namespace).values())) == 3, TIMEOUT, message="3 ready")
        wait_for(lambda: pdb_status(api, namespace, "drain-pdb").get("disruptionsAllowed") == 1, TIMEOUT,
                 message="one disruption allowed")
        originals = set(live_pods(api, namespace))
        sim.hold()  # the replacement of the first evicted pod stays not ready

        result: dict = {}
        drain = threading.Thread(target=lambda: result.update(proc=kubectl.run(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s", "-v=6", check=False,
            timeout=40)))
        drain.start()
        try:
            # one eviction goes through; the budget then allows none while the replacement is not ready
            wait_for(lambda: len(originals & set(live_pods(api, namespace))) == 2, TIMEOUT, message="one evicted")
            wait_for(lambda: len(live_pods(api, namespace)) == 3, TIMEOUT, message="a replacement pod")
            status = wait_for(lambda: (s := pdb_status(api, namespace, "drain-pdb")).get("expectedPods") == 3
                              and s, TIMEOUT, message="the budget recomputed")
            assert (status["currentHealthy"], status["desiredHealthy"], status["disruptionsAllowed"]) == (2, 2, 0)
            assert status["conditions"][0]["reason"] == "InsufficientPods"
            survivor = sorted(originals & set(live_pods(api, namespace)))[0]
            refused = evict(api, namespace, survivor)
            assert refused.status_code == 429, refused.text
            assert refused.json()["message"] == VIOLATION
            assert len(originals & set(live_pods(api, namespace))) == 2
        finally:
            api.patch(f"/apis/apps/v1/namespaces/{namespace}/replicasets/web", json={"spec": {"replicas": 4}},
                      headers={"Content-Type": "application/merge-patch+json"})
            sim.release()  # replacements become ready: the drain can go on
            drain.join(timeout=45)
    proc = result["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/eviction 429" in proc.stderr  # kubectl's own evictions were refused first
    assert not originals & set(live_pods(api, namespace))
    assert f"node/{node} drained" in proc.stdout
    node_obj = json.loads(kubectl("get", "node", node, "-o", "json"))
    assert node_obj["spec"]["unschedulable"] is True
    api.delete(f"/apis/apps/v1/namespaces/{namespace}/replicasets/web")
