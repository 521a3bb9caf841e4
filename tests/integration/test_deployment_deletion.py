"""Deleting a Deployment with kubectl's three cascades: the garbage collector, ReplicaSet and Deployment
controllers together. Foreground order is checked from a watch: every pod and ReplicaSet is gone before
the Deployment is."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.integration.test_deployments import get_json, live_pods, manifest, replica_sets
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")


def pod_count(api, ns: str) -> int:
    return len(get_json(api, f"/api/v1/namespaces/{ns}/pods")["items"])


def test_background_delete_removes_replica_sets_and_pods(api, namespace, kubectl):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(replicas=3))
    wait_for(lambda: len(live_pods(api, namespace)) == 3, 20, message="3 pods")
    kubectl("delete", "deployment", "web", "-n", namespace)
    wait_for(lambda: not replica_sets(api, namespace) and pod_count(api, namespace) == 0, 20,
             message="ReplicaSets and pods collected")


def test_orphan_delete_leaves_replica_sets_and_pods(api, namespace, kubectl):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(replicas=2))
    wait_for(lambda: len(live_pods(api, namespace)) == 2, 20, message="2 pods")
    kubectl("delete", "deployment", "web", "-n", namespace, "--cascade=orphan")
    wait_for(lambda: api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web").status_code == 404, 20,
             message="the deployment gone")
    [rs] = wait_for(lambda: [r for r in replica_sets(api, namespace) if not r["metadata"].get("ownerReferences")],
                    20, message="the ReplicaSet released")
    assert rs["spec"]["replicas"] == 2
    pods = live_pods(api, namespace)
    assert len(pods) == 2 and all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods)


def test_foreground_delete_removes_dependents_before_the_deployment(api, namespace, kubectl, apiserver):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(replicas=2))
    wait_for(lambda: len(live_pods(api, namespace)) == 2, 20, message="2 pods")
    rv = get_json(api, "/apis/apps/v1/deployments")["metadata"]["resourceVersion"]
    gone_at: dict[str, int] = {}
    order = [0]
    done = threading.Event()

    def watch(path: str) -> None:
        with httpx.Client(base_url=apiserver.url, timeout=httpx.Timeout(10, read=30)) as client, client.stream(
                "GET", path, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "25"}) as stream:
            for line in stream.iter_lines():
                event = json.loads(line)
                if event["type"] == "DELETED":
                    order[0] += 1
                    gone_at[event["object"]["kind"] + "/" + event["object"]["metadata"]["name"]] = order[0]
                if done.is_set():
                    return

    threads = [threading.Thread(target=watch, args=(f"/api/v1/namespaces/{namespace}/pods",), daemon=True),
               threading.Thread(target=watch, args=(f"/apis/apps/v1/namespaces/{namespace}/replicasets",),
                                daemon=True),
               threading.Thread(target=watch, args=(f"/apis/apps/v1/namespaces/{namespace}/deployments",),
                                daemon=True)]
    for thread in threads:
        thread.start()
    kubectl("delete", "deployment", "web", "-n", namespace, "--cascade=foreground", "--wait=false")
    held = get_json(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert held["metadata"]["deletionTimestamp"] and "foregroundDeletion" in held["metadata"]["finalizers"]
    wait_for(lambda: "Deployment/web" in gone_at, 20, message="the deployment deleted")
    done.set()
    dependents = {k: v for k, v in gone_at.items() if not k.startswith("Deployment/")}
    assert len([k for k in dependents if k.startswith("Pod/")]) == 2
    assert len([k for k in dependents if k.startswith("ReplicaSet/")]) == 1
    assert max(dependents.values()) < gone_at["Deployment/web"], gone_at
