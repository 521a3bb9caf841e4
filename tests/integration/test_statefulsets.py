"""StatefulSets end to end: kubectl against the API server, the session controller-manager doing the work.

No kubelet runs here, so the test plays it for each pod: it writes a Running/Ready status through
``pods/status`` (:func:`~tests.integration.podsim.running_status`) only when it decides to, which is
how it checks OrderedReady: pod *n+1* must not appear before pod *n* is Ready. Scale-down order is
read from a watch on the namespace's pods (deletions of unbound pods are immediate, so polling could
miss the intermediate state).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.integration.podsim import PodSimulator, interrupt, running_status
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

TIMEOUT = 15


def manifest(name: str = "web", replicas: int = 3, *, claims: bool = True) -> str:
    spec: dict = {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return json.dumps({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec})


def pod_names(api: httpx.Client, ns: str) -> set[str]:
    resp = api.get(f"/api/v1/namespaces/{ns}/pods")
    assert resp.status_code == 200, resp.text
    return {p["metadata"]["name"] for p in resp.json()["items"] if not p["metadata"].get("deletionTimestamp")}


def mark_ready(api: httpx.Client, ns: str, name: str) -> None:
    path = f"/api/v1/namespaces/{ns}/pods/{name}"
    for _ in range(10):
        pod = api.get(path).json()
        pod["status"] = running_status(pod)
        resp = api.put(f"{path}/status", json=pod)
        if resp.status_code != 409:
            assert resp.status_code == 200, resp.text
            return
    raise AssertionError(f"could not mark {name} ready")


def statefulset(api: httpx.Client, ns: str, name: str = "web") -> dict:
    resp = api.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")
    assert resp.status_code == 200, resp.text
    return resp.json()


class DeletionWatcher:
    """Records the names of pods the watch reports DELETED, in order."""

    def __init__(self, base_url: str, ns: str, resource_version: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=60.0))
        self.path = f"/api/v1/namespaces/{ns}/pods"
        self.rv = resource_version
        self.deleted: list[str] = []
        self.response: httpx.Response | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.client.stream("GET", self.path, params={"watch": "true", "resourceVersion": self.rv}) as resp:
                self.response = resp
                for line in resp.iter_lines():
                    if line.strip():
                        event = json.loads(line)
                        if event["type"] == "DELETED":
                            self.deleted.append(event["object"]["metadata"]["name"])
        except httpx.HTTPError:
            pass  # closed by stop()

    def stop(self) -> None:
        if self.response is not None:
            interrupt(self.response)
        self.thread.join(timeout=5)
        self.client.close()


def test_pods_are_created_in_order_and_removed_in_reverse(api, namespace, kubectl):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest())
    for ordinal in range(3):
        name = f"web-{ordinal}"
        wait_for(lambda name=name: name in pod_names(api, namespace), timeout=TIMEOUT, message=f"pod {name}")
        time.sleep(0.3)  # give the controller a chance to (wrongly) start the next one
        assert pod_names(api, namespace) == {f"web-{i}" for i in range(ordinal + 1)}
        mark_ready(api, namespace, name)

    wait_for(lambda: statefulset(api, namespace)["status"].get("readyReplicas") == 3, timeout=TIMEOUT,
             message="3 ready replicas")
    out = kubectl("rollout", "status", "statefulset/web", "-n", namespace, f"--timeout={TIMEOUT}s",
                  timeout=TIMEOUT + 10)
    assert "complete" in out, out
    sts = statefulset(api, namespace)
    status = sts["status"]
    assert status["currentRevision"] == status["updateRevision"]
    assert (status["replicas"], status["currentReplicas"], status["updatedReplicas"], status["availableReplicas"]) \
        == (3, 3, 3, 3)
    pod = api.get(f"/api/v1/namespaces/{namespace}/pods/web-1").json()
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert pod["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("web-1", "web")
    claims = api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims").json()["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1", "data-web-2"]

    rv = api.get(f"/api/v1/namespaces/{namespace}/pods").json()["metadata"]["resourceVersion"]
    watcher = DeletionWatcher(str(api.base_url), namespace, rv)
    try:
        kubectl("scale", "statefulset/web", "--replicas=1", "-n", namespace)
        wait_for(lambda: pod_names(api, namespace) == {"web-0"}, timeout=TIMEOUT, message="only web-0 left")
        wait_for(lambda: len(watcher.deleted) >= 2, timeout=5, message="two deletions watched")
    finally:
        watcher.stop()
    assert watcher.deleted == ["web-2", "web-1"]
    wait_for(lambda: statefulset(api, namespace)["status"].get("replicas") == 1, timeout=TIMEOUT,
             message="status.replicas 1")
    # whenScaled defaults to Retain: the claims stay
    claims = api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims").json()["items"]
    assert len(claims) == 3


def test_rolling_update_replaces_pods_from_the_highest_ordinal(api, namespace, kubectl):
    with PodSimulator(api.base_url, namespace, ready_after=0.1):
        kubectl("apply", "-n", namespace, "-f", "-", input=manifest("db", claims=False))
        rollout = ("rollout", "status", "statefulset/db", "-n", namespace, f"--timeout={TIMEOUT}s")
        assert "complete" in kubectl(*rollout, timeout=TIMEOUT + 10)
        before = statefulset(api, namespace, "db")["status"]["currentRevision"]
        rv = api.get(f"/api/v1/namespaces/{namespace}/pods").json()["metadata"]["resourceVersion"]
        watcher = DeletionWatcher(str(api.base_url), namespace, rv)
        try:
            kubectl("set", "image", "statefulset/db", "app=nginx:2", "-n", namespace)
            assert "complete" in kubectl(*rollout, timeout=TIMEOUT + 10)
        finally:
            watcher.stop()
    assert watcher.deleted == ["db-2", "db-1", "db-0"]
    status = statefulset(api, namespace, "db")["status"]
    assert status["currentRevision"] == status["updateRevision"] != before
    pods = api.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {status["updateRevision"]}
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}
    revisions = api.get(f"/apis/apps/v1/namespaces/{namespace}/controllerrevisions").json()["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
