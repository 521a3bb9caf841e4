"""Namespace lifecycle with the controller-manager running: deletion empties and removes, default SAs."""

from __future__ import annotations

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

MERGE = {"Content-Type": "application/merge-patch+json"}
CONTENT = [
    "/api/v1/namespaces/{ns}/configmaps", "/api/v1/namespaces/{ns}/secrets", "/api/v1/namespaces/{ns}/pods",
    "/apis/apps/v1/namespaces/{ns}/deployments", "/apis/apps/v1/namespaces/{ns}/replicasets",
    "/api/v1/namespaces/{ns}/serviceaccounts",
]


def gone(api, path: str) -> bool:
    return api.get(path).status_code == 404


def conditions(api, ns: str) -> dict[str, tuple[str, str, str]]:
    resp = api.get(f"/api/v1/namespaces/{ns}")
    assert resp.status_code == 200, resp.text
    found = resp.json().get("status", {}).get("conditions") or []
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in found}


def test_deleting_a_namespace_removes_its_content_and_then_the_namespace(api, namespace, kubectl):
    kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=a=b")
    kubectl("create", "secret", "generic", "token", "-n", namespace, "--from-literal=t=s")
    kubectl("create", "deployment", "web", "-n", namespace, "--image=nginx", "--replicas=2")
    pod = {"metadata": {"name": "loose"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201
    # the deployment's pods exist too (the deployment and replicaset controllers run alongside)
    wait_for(lambda: len(api.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]) == 3, timeout=10,
             message="the deployment's pods")

    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: gone(api, f"/api/v1/namespaces/{namespace}"), timeout=20, message=f"namespace {namespace} gone")

    for path in CONTENT:
        items = api.get(path.format(ns=namespace)).json()["items"]
        assert items == [], f"{path}: {[i['metadata']['name'] for i in items]}"


def test_a_finalizer_keeps_the_namespace_terminating_until_it_is_removed(api, namespace, kubectl):
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"k": "v"}}
    assert api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=held).status_code == 201
    kubectl("create", "configmap", "free", "-n", namespace)

    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: conditions(api, namespace).get("NamespaceFinalizersRemaining", ("",))[0] == "True",
             timeout=15, message="NamespaceFinalizersRemaining")
    found = conditions(api, namespace)
    assert found["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
    assert found["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: configmaps. has 1 resource instances")
    assert found["NamespaceDeletionContentFailure"][0] == "False"
    ns = api.get(f"/api/v1/namespaces/{namespace}").json()
    assert ns["status"]["phase"] == "Terminating" and "kubernetes" in ns["spec"]["finalizers"]
    assert gone(api, f"/api/v1/namespaces/{namespace}/configmaps/free")
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps/held").json()["metadata"]["deletionTimestamp"]
    refused = api.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "late"}})
    assert refused.status_code == 403
    assert refused.json()["details"]["causes"][0]["reason"] == "NamespaceTerminating"

    resp = api.patch(f"/api/v1/namespaces/{namespace}/configmaps/held", headers=MERGE,
                     json={"metadata": {"finalizers": None}})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: gone(api, f"/api/v1/namespaces/{namespace}"), timeout=15, message=f"namespace {namespace} gone")


def test_every_new_namespace_gets_a_default_service_account(api, namespace, kubectl):
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    wait_for(lambda: api.get(path).status_code == 200, timeout=10, message="default ServiceAccount")
    assert kubectl("get", "serviceaccount", "default", "-n", namespace, "-o", "name").strip() == \
        "serviceaccount/default"


def test_a_deleted_default_service_account_is_recreated(api, namespace, kubectl):
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    first = wait_for(lambda: api.get(path).status_code == 200 and api.get(path).json(), timeout=10,
                     message="default ServiceAccount")
    kubectl("delete", "serviceaccount", "default", "-n", namespace)

    def recreated():
        resp = api.get(path)
        return resp.status_code == 200 and resp.json()["metadata"]["uid"] != first["metadata"]["uid"]

    wait_for(recreated, timeout=10, message="default ServiceAccount recreated")
