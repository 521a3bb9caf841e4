"""Subresources with their own semantics: binding, eviction with disruption budgets, status, scale."""

from __future__ import annotations

from tests.support import wait_for

MERGE = {"Content-Type": "application/merge-patch+json"}


def make_pod(api, namespace: str, name: str, labels: dict | None = None) -> dict:
    pod = {"metadata": {"name": name, "labels": labels or {}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_binding_assigns_a_node_once(api, namespace):
    make_pod(api, namespace, "p")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods/p/binding", json=binding)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "Success"
    pod = api.get(f"/api/v1/namespaces/{namespace}/pods/p").json()
    assert pod["spec"]["nodeName"] == "node-1"
    scheduled = [c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"

    again = api.post(f"/api/v1/namespaces/{namespace}/pods/p/binding",
                     json={**binding, "target": {"kind": "Node", "name": "node-2"}})
    assert again.status_code == 409
    assert "already assigned" in again.json()["message"]
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/p").json()["spec"]["nodeName"] == "node-1"


def test_spec_node_name_cannot_change_through_an_update(api, namespace):
    make_pod(api, namespace, "p")
    resp = api.patch(f"/api/v1/namespaces/{namespace}/pods/p", json={"spec": {"nodeName": "n"}}, headers=MERGE)
    assert resp.status_code == 422
    assert resp.json()["reason"] == "Invalid"


def test_status_subresource_changes_only_status(api, namespace):
    make_pod(api, namespace, "p")
    resp = api.patch(f"/api/v1/namespaces/{namespace}/pods/p/status", headers=MERGE,
                     json={"status": {"phase": "Running"}, "spec": {"activeDeadlineSeconds": 5}})
    assert resp.status_code == 200, resp.text
    pod = resp.json()
    assert pod["status"]["phase"] == "Running"
    assert "activeDeadlineSeconds" not in pod["spec"]
    # and the main resource keeps status when a client sends another one
    put = dict(pod, status={"phase": "Failed"})
    main = api.put(f"/api/v1/namespaces/{namespace}/pods/p", json=put)
    assert main.status_code == 200, main.text
    assert main.json()["status"]["phase"] == "Running"


def _running_pod(api, namespace: str, name: str, *, ready: bool = True) -> None:
    make_pod(api, namespace, name, {"app": "db"})
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    resp = api.patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", headers=MERGE,
                     json={"status": {"phase": "Running", "conditions": conditions}})
    assert resp.status_code == 200, resp.text


def _eviction(name: str) -> dict:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}, "deleteOptions": {}}


def _budget(api, namespace: str) -> dict:
    return api.get(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/db").json().get("status") or {}


def test_eviction_respects_the_disruption_budget(api, namespace, controller_manager):
    """The disruption controller keeps the budget's status; evictions consume it or get 429."""
    _running_pod(api, namespace, "db-0")
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}
    created = api.post(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", json=pdb)
    assert created.status_code == 201, created.text
    wait_for(lambda: _budget(api, namespace).get("currentHealthy") == 1, message="the budget's status")

    blocked = api.post(f"/api/v1/namespaces/{namespace}/pods/db-0/eviction", json=_eviction("db-0"))
    assert blocked.status_code == 429
    assert "Retry-After" not in blocked.headers  # kubectl drain retries on its own 5 s schedule
    body = blocked.json()
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                          "message": "The disruption budget db needs 1 healthy pods and has 1 "
                                                     "currently"}]
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/db-0").status_code == 200

    # A running pod that is not ready may go while the budget is satisfied (IfHealthyBudget).
    _running_pod(api, namespace, "sick", ready=False)
    assert api.post(f"/api/v1/namespaces/{namespace}/pods/sick/eviction", json=_eviction("sick")).status_code == 201

    _running_pod(api, namespace, "db-1")
    wait_for(lambda: _budget(api, namespace).get("disruptionsAllowed") == 1, message="one disruption allowed")
    allowed = api.post(f"/api/v1/namespaces/{namespace}/pods/db-0/eviction", json=_eviction("db-0"))
    assert allowed.status_code == 201, allowed.text
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/db-0").status_code == 404  # unscheduled: gone at once
    again = api.post(f"/api/v1/namespaces/{namespace}/pods/db-1/eviction", json=_eviction("db-1"))
    assert again.status_code == 429  # the one allowed disruption is used up


def test_eviction_of_a_missing_pod_is_not_found(api, namespace):
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods/ghost/eviction", json=_eviction("ghost"))
    assert resp.status_code == 404


def test_scale_with_a_stale_resource_version_conflicts(api, namespace):
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
    }
    assert api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=deployment).status_code == 201
    scale = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "app=web"
    # the controller-manager (when this session runs one) may write the deployment meanwhile: a conflict
    # then is correct, and the write is repeated from a fresh read
    for _ in range(10):
        first = api.put(f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale",
                        json={**scale, "spec": {"replicas": 3}})
        if first.status_code != 409:
            break
        scale = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale").json()
    assert first.status_code == 200, first.text
    stale = api.put(f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale",
                    json={**scale, "spec": {"replicas": 5}})
    assert stale.status_code == 409
    assert api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web").json()["spec"]["replicas"] == 3


def test_an_evicted_pod_is_marked_as_a_disruption_target(api, namespace):
    pod = {"metadata": {"name": "bound"},
           "spec": {"nodeName": "some-node", "containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201
    assert api.post(f"/api/v1/namespaces/{namespace}/pods/bound/eviction", json=_eviction("bound")).status_code == 201
    left = api.get(f"/api/v1/namespaces/{namespace}/pods/bound").json()  # graceful: its kubelet would stop it
    assert left["metadata"]["deletionTimestamp"]
    [cond] = [c for c in left["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (cond["status"], cond["reason"]) == ("True", "EvictionByEvictionAPI")
    assert cond["message"] == "Eviction API: evicting"
