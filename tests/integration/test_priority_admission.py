"""Priority admission: a pod's spec.priority comes from its PriorityClass (or the global default)."""

from __future__ import annotations

import uuid


def priority_class(api, name: str, value: int, **extra) -> None:
    resp = api.post("/apis/scheduling.k8s.io/v1/priorityclasses",
                    json={"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                          "metadata": {"name": name}, "value": value, **extra})
    assert resp.status_code == 201, resp.text


def pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


def test_priority_and_preemption_policy_come_from_the_class(api, namespace):
    name = "batch-" + uuid.uuid4().hex[:6]
    priority_class(api, name, 4242, preemptionPolicy="Never")
    created = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod("p", priorityClassName=name))
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert spec["priority"] == 4242 and spec["preemptionPolicy"] == "Never"


def test_unknown_class_and_a_mismatched_priority_are_refused(api, namespace):
    missing = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod("p", priorityClassName="nope"))
    assert missing.status_code == 403
    assert "no PriorityClass with name nope was found" in missing.json()["message"]
    name = "fixed-" + uuid.uuid4().hex[:6]
    priority_class(api, name, 7)
    wrong = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod("q", priorityClassName=name, priority=8))
    assert wrong.status_code == 403
    assert "must not be provided in pod spec" in wrong.json()["message"]
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/q").status_code == 404
