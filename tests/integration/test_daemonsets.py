"""DaemonSets end to end: the session controller-manager follows Node objects this test creates.

No kubelet or scheduler is needed: daemon pods are pinned to their node by required node affinity on
``metadata.name`` (the scheduler would bind them), so the test reads the node a pod is meant for from
that affinity. :class:`~tests.integration.podsim.PodSimulator` reports the pods Running and Ready so
``kubectl rollout status ds`` can judge a rollout. The DaemonSet selects only the nodes this test
creates (a label with the namespace's name), so other tests' nodes do not matter; they are deleted
at the end.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.integration.podsim import PodSimulator
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

TIMEOUT = 15
MERGE = {"Content-Type": "application/merge-patch+json"}
HASH_LABEL = "controller-revision-hash"


def manifest(namespace: str, image: str = "agent:1") -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"nodeSelector": {"ds-test": namespace},
                                  "containers": [{"name": "agent", "image": image}]}},
        },
    })


def pinned_node(pod: dict) -> str:
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return terms["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]


def live_pods(api: httpx.Client, ns: str) -> dict[str, dict]:
    resp = api.get(f"/api/v1/namespaces/{ns}/pods")
    assert resp.status_code == 200, resp.text
    return {pinned_node(p): p for p in resp.json()["items"] if not p["metadata"].get("deletionTimestamp")}


def daemon_set(api: httpx.Client, ns: str) -> dict:
    resp = api.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent")
    assert resp.status_code == 200, resp.text
    return resp.json()


class Nodes:
    def __init__(self, api: httpx.Client, namespace: str) -> None:
        self.api, self.namespace, self.names = api, namespace, []

    def create(self, suffix: str) -> str:
        name = f"{self.namespace}-{suffix}"
        resp = self.api.post("/api/v1/nodes", json={"metadata": {"name": name,
                                                                  "labels": {"ds-test": self.namespace}}})
        assert resp.status_code == 201, resp.text
        self.names.append(name)
        return name

    def taint(self, name: str, effect: str) -> None:
        patch = {"spec": {"taints": [{"key": "example.com/maintenance", "value": "yes", "effect": effect}]}}
        resp = self.api.patch(f"/api/v1/nodes/{name}", json=patch, headers=MERGE)
        assert resp.status_code == 200, resp.text

    def delete(self, name: str) -> None:
        self.api.delete(f"/api/v1/nodes/{name}")

    def delete_all(self) -> None:
        for name in self.names:
            self.delete(name)


def test_daemonset_follows_nodes_and_rolls_out(api, kubectl, namespace):
    nodes = Nodes(api, namespace)
    try:
        with PodSimulator(api.base_url, namespace):
            n1, n2 = nodes.create("n1"), nodes.create("n2")
            kubectl("apply", "-n", namespace, "-f", "-", input=manifest(namespace))
            wait_for(lambda: set(live_pods(api, namespace)) == {n1, n2}, TIMEOUT, message="a pod on each node")
            kubectl("rollout", "status", "ds/agent", "-n", namespace, f"--timeout={TIMEOUT}s", timeout=TIMEOUT + 5)

            pod = live_pods(api, namespace)[n1]
            tolerated = {(t["key"], t.get("effect")) for t in pod["spec"].get("tolerations") or ()}
            assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerated
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"

            n3 = nodes.create("n3")
            wait_for(lambda: set(live_pods(api, namespace)) == {n1, n2, n3}, TIMEOUT, message="a pod on the new node")

            nodes.taint(n3, "NoSchedule")  # an existing pod stays on a NoSchedule-tainted node
            nodes.taint(n1, "NoExecute")  # … but not on a NoExecute-tainted one
            wait_for(lambda: set(live_pods(api, namespace)) == {n2, n3}, TIMEOUT, message="the pod on n1 removed")
            wait_for(lambda: daemon_set(api, namespace).get("status", {}).get("numberMisscheduled") == 1, TIMEOUT,
                     message="n3's pod counted as misscheduled")
            assert daemon_set(api, namespace)["status"]["desiredNumberScheduled"] == 1

            nodes.delete(n3)
            wait_for(lambda: set(live_pods(api, namespace)) == {n2}, TIMEOUT, message="the pod on n3 removed")

            n4 = nodes.create("n4")
            kubectl("apply", "-n", namespace, "-f", "-", input=manifest(namespace, image="agent:2"))
            kubectl("rollout", "status", "ds/agent", "-n", namespace, f"--timeout={TIMEOUT}s", timeout=TIMEOUT + 5)
            ds = daemon_set(api, namespace)
            status = ds["status"]
            assert status["observedGeneration"] == ds["metadata"]["generation"]
            assert status["desiredNumberScheduled"] == 2 and status["updatedNumberScheduled"] == 2
            assert status["numberAvailable"] == 2 and status.get("numberUnavailable", 0) == 0
            pods = live_pods(api, namespace)
            assert set(pods) == {n2, n4}
            assert {p["spec"]["containers"][0]["image"] for p in pods.values()} == {"agent:2"}
            revisions = api.get(f"/apis/apps/v1/namespaces/{namespace}/controllerrevisions").json()["items"]
            assert sorted(r["revision"] for r in revisions) == [1, 2]
            current = max(revisions, key=lambda r: r["revision"])
            assert {p["metadata"]["labels"][HASH_LABEL] for p in pods.values()} == {
                current["metadata"]["labels"][HASH_LABEL]}
            time.sleep(1)  # settled: the controller does not keep rewriting an unchanged status
            assert daemon_set(api, namespace)["metadata"]["resourceVersion"] == ds["metadata"]["resourceVersion"]
    finally:
        nodes.delete_all()
