"""The controller-manager process: ReplicaSets made real, /healthz and /metrics, and leader election
between two processes (kill -9 of the leader; no duplicate pods, counted from a watch)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer
from kubemini.process import ControllerManagerProcess
from tests.support import wait_for


def replica_set(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}


def pods_of(api: httpx.Client, namespace: str, app: str) -> list[dict]:
    resp = api.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": f"app={app}"})
    return [p for p in resp.json()["items"] if not p["metadata"].get("deletionTimestamp")]


def test_replicaset_creates_replaces_and_scales_pods(api, namespace, controller_manager):
    created = api.post(f"/apis/apps/v1/namespaces/{namespace}/replicasets", json=replica_set("web", 3))
    assert created.status_code == 201, created.text
    rs_uid = created.json()["metadata"]["uid"]
    pods = wait_for(lambda: len(pods_of(api, namespace, "web")) == 3 and pods_of(api, namespace, "web"), 15,
                    message="3 pods")
    for pod in pods:
        [ref] = pod["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs_uid,
                       "controller": True, "blockOwnerDeletion": True}
        assert pod["metadata"]["name"].startswith("web-")

    victim = pods[0]["metadata"]["name"]
    assert api.delete(f"/api/v1/namespaces/{namespace}/pods/{victim}",
                      params={"gracePeriodSeconds": "0"}).status_code == 200
    wait_for(lambda: len(pods_of(api, namespace, "web")) == 3
             and victim not in {p["metadata"]["name"] for p in pods_of(api, namespace, "web")}, 15,
             message="the deleted pod replaced")

    scale = api.patch(f"/apis/apps/v1/namespaces/{namespace}/replicasets/web/scale", json={"spec": {"replicas": 1}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert scale.status_code == 200, scale.text
    wait_for(lambda: len(pods_of(api, namespace, "web")) == 1, 15, message="scaled down to 1")

    def status_settled():
        rs = api.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets/web").json()
        status = rs.get("status", {})
        return status.get("replicas") == 1 and status.get("observedGeneration") == rs["metadata"]["generation"]
    wait_for(status_settled, 15, message="status.replicas 1 at the current generation")


def test_adopts_an_orphan_pod_matching_the_selector(api, namespace, controller_manager):
    orphan = {"metadata": {"name": "orphan", "labels": {"app": "adopt"}},
              "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=orphan).status_code == 201
    rs = api.post(f"/apis/apps/v1/namespaces/{namespace}/replicasets", json=replica_set("adopt", 2)).json()

    def adopted():
        pod = api.get(f"/api/v1/namespaces/{namespace}/pods/orphan").json()
        refs = pod["metadata"].get("ownerReferences") or []
        return refs and refs[0]["uid"] == rs["metadata"]["uid"]
    wait_for(adopted, 15, message="the orphan adopted")
    wait_for(lambda: len(pods_of(api, namespace, "adopt")) == 2, 15, message="only one more pod created")


def test_healthz_and_metrics(api, namespace, controller_manager):
    assert httpx.get(controller_manager.url + "/healthz").text == "ok"
    api.post(f"/apis/apps/v1/namespaces/{namespace}/replicasets", json=replica_set("metered", 1))
    wait_for(lambda: len(pods_of(api, namespace, "metered")) == 1, 15, message="a pod")
    metrics = httpx.get(controller_manager.url + "/metrics").text
    assert 'workqueue_adds_total{name="replicaset"}' in metrics
    assert 'workqueue_depth{name="deployment"}' in metrics
    assert 'workqueue_work_duration_seconds_count{name="replicaset"}' in metrics
    assert httpx.get(controller_manager.url + "/nope").status_code == 404


# --- leader election: its own etcd and API server, so the session's controller-manager stays out ---------------


@pytest.fixture(scope="module")
def isolated_cluster(tmp_path_factory):
    etcd = EtcdServer(tmp_path_factory.mktemp("le-etcd")).start()
    api = ApiServerProcess([etcd.endpoint], tmp_path_factory.mktemp("le-api")).start()
    kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("le-kube") / "config", api.url)
    yield api, kubeconfig
    api.stop()
    etcd.stop()


LEADER_ARGS = ["--leader-elect", "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
               "--leader-elect-retry-period", "0.5", "--controllers", "replicaset"]


def is_leading(proc: ControllerManagerProcess) -> bool:
    try:
        text = httpx.get(proc.url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    return 'leader_election_master_status{name="kube-controller-manager"} 1.0' in text


def test_two_managers_one_leader_and_failover_without_duplicate_pods(isolated_cluster, tmp_path):
    api_proc, kubeconfig = isolated_cluster
    api = httpx.Client(base_url=api_proc.url, timeout=30)
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "kube-system"}}).status_code in (201, 409)
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "le"}}).status_code in (201, 409)

    added: list[str] = []
    stop = threading.Event()

    def count_pod_creations() -> None:
        with httpx.Client(base_url=api_proc.url, timeout=None) as watcher, watcher.stream(
                "GET", "/api/v1/namespaces/le/pods", params={"watch": "true", "timeoutSeconds": "60"}) as stream:
            for line in stream.iter_lines():
                event = json.loads(line)
                if event["type"] == "ADDED":
                    added.append(event["object"]["metadata"]["name"])
                if stop.is_set():
                    return

    watch = threading.Thread(target=count_pod_creations, daemon=True)
    watch.start()

    first = ControllerManagerProcess(kubeconfig, tmp_path, extra_args=LEADER_ARGS, log_name="cm-1").start()
    second = ControllerManagerProcess(kubeconfig, tmp_path, extra_args=LEADER_ARGS, log_name="cm-2").start()
    try:
        leader = wait_for(lambda: next((p for p in (first, second) if is_leading(p)), None), 10, message="a leader")
        standby = second if leader is first else first
        assert not is_leading(standby)
        assert api.post("/apis/apps/v1/namespaces/le/replicasets",
                        json=replica_set("ha", 5)).status_code == 201
        wait_for(lambda: len(added) == 5, 15, message="5 pods from the leader")

        leader.kill()  # kill -9: no lease release; the standby must wait for expiry
        wait_for(lambda: is_leading(standby), 3 + 5, message="the standby leading within the lease duration")
        # the new leader must converge on the same 5 pods, not create 5 more; scale up proves it acts
        assert api.patch("/apis/apps/v1/namespaces/le/replicasets/ha", json={"spec": {"replicas": 7}},
                         headers={"Content-Type": "application/merge-patch+json"}).status_code == 200
        wait_for(lambda: len(added) == 7, 15, message="2 more pods from the new leader")
        lease = api.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager").json()
        assert lease["spec"]["leaseTransitions"] >= 1
        assert lease["spec"]["holderIdentity"]
    finally:
        stop.set()
        first.stop()
        second.stop()
    current = api.get("/api/v1/namespaces/le/pods").json()["items"]
    assert len(current) == 7
    assert len(added) == len(set(added)) == 7, f"duplicate or extra pods were created: {added}"
    api.close()
