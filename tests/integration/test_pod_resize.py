"""pods/resize against a real API server: kubectl 1.32's ``--subresource resize``, every patch type, PUT,
GET, the generation bump, and the messages a user sees when a resize is refused."""

from __future__ import annotations

import json

import pytest

MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def make_pod(api, namespace: str, name: str = "p", resources: dict | None = None) -> dict:
    resources = resources if resources is not None else {
        "requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
    pod = {"metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}]}}
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert resp.status_code == 201, resp.text
    return resp.json()


def url(namespace: str, name: str = "p", sub: str = "/resize") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}{sub}"


def container_resources(api, namespace: str, name: str = "p") -> dict:
    return api.get(url(namespace, name, "")).json()["spec"]["containers"][0]["resources"]


def test_kubectl_patch_resize_changes_only_resources(api, namespace, kubectl):
    created = make_pod(api, namespace)
    assert created["metadata"]["generation"] == 1
    out = kubectl("-n", namespace, "patch", "pod", "p", "--subresource", "resize", "--patch",
                  '{"spec":{"containers":[{"name":"c","resources":{"limits":{"memory":"64Mi"}}}]}}')
    assert "pod/p patched" in out
    pod = api.get(url(namespace, sub="")).json()
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
    assert pod["metadata"]["generation"] == 2
    assert pod["metadata"]["uid"] == created["metadata"]["uid"]
    assert pod["status"]["qosClass"] == "Burstable"


def test_kubectl_shows_the_refusal(api, namespace, kubectl):
    make_pod(api, namespace, resources={})
    result = kubectl.run("-n", namespace, "patch", "pod", "p", "--subresource", "resize", "--patch",
                         '{"spec":{"containers":[{"name":"c","resources":{"requests":{"memory":"40Mi"}}}]}}',
                         check=False)
    assert result.returncode != 0
    assert 'spec: Invalid value: "BestEffort": Pod QOS Class may not change as a result of resizing' in result.stderr
    assert container_resources(api, namespace) == {}


def test_get_resize_returns_the_pod(api, namespace):
    make_pod(api, namespace)
    resp = api.get(url(namespace))
    assert resp.status_code == 200, resp.text
    assert resp.json()["kind"] == "Pod"
    assert resp.json()["metadata"]["name"] == "p"


@pytest.mark.parametrize(("headers", "body"), [
    (MERGE, {"spec": {"containers": [{"name": "c", "image": "nginx", "resources": {
        "requests": {"cpu": "150m", "memory": "32Mi"}, "limits": {"cpu": "300m", "memory": "128Mi"}}}]}}),
    (STRATEGIC, {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "150m"},
                                                                      "limits": {"cpu": "300m"}}}]}}),
    (JSON_PATCH, [{"op": "replace", "path": "/spec/containers/0/resources/requests/cpu", "value": "150m"},
                  {"op": "replace", "path": "/spec/containers/0/resources/limits/cpu", "value": "300m"}]),
])
def test_every_patch_type(api, namespace, headers, body):
    make_pod(api, namespace)
    resp = api.patch(url(namespace), headers=headers, content=json.dumps(body))
    assert resp.status_code == 200, resp.text
    pod = resp.json()
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "150m"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "300m"
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.36"  # not a resize field: kept
    assert pod["metadata"]["generation"] == 2


def test_server_side_apply(api, namespace):
    make_pod(api, namespace)
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "150m", "memory": "32Mi"},
                                                                "limits": {"cpu": "300m", "memory": "128Mi"}}}]}}
    resp = api.patch(url(namespace), headers=APPLY, params={"fieldManager": "vpa", "force": "true"},
                     content=json.dumps(body))
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "300m"


def test_put_keeps_everything_but_resources(api, namespace):
    pod = make_pod(api, namespace)
    pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = "48Mi"
    pod["spec"]["activeDeadlineSeconds"] = 30
    pod["metadata"]["labels"] = {"sneaky": "yes"}
    resp = api.put(url(namespace), json=pod)
    assert resp.status_code == 200, resp.text
    stored = resp.json()
    assert stored["spec"]["containers"][0]["resources"]["requests"]["memory"] == "48Mi"
    assert "activeDeadlineSeconds" not in stored["spec"]
    assert "sneaky" not in (stored["metadata"].get("labels") or {})


def test_an_unchanged_resize_keeps_the_generation(api, namespace):
    make_pod(api, namespace)
    resp = api.patch(url(namespace), headers=STRATEGIC,
                     json={"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["metadata"]["generation"] == 1


@pytest.mark.parametrize(("patch", "message"), [
    ({"spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": None}}}]}},
     "spec.containers[0].resources.limits: Forbidden: resource limits cannot be removed"),
    ({"spec": {"containers": [{"name": "c", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]}},
     "spec: Forbidden: only cpu and memory resources are mutable"),
    ({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}},
     'spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 200m'),
])
def test_invalid_resizes_are_422_and_change_nothing(api, namespace, patch, message):
    make_pod(api, namespace)
    before = api.get(url(namespace, sub="")).json()
    resp = api.patch(url(namespace), headers=STRATEGIC, json=patch)
    assert resp.status_code == 422, resp.text
    assert resp.json()["reason"] == "Invalid"
    assert message in resp.json()["message"]
    after = api.get(url(namespace, sub="")).json()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_the_main_resource_still_refuses_resource_changes(api, namespace):
    make_pod(api, namespace)
    resp = api.patch(url(namespace, sub=""), headers=STRATEGIC,
                     json={"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "300m"}}}]}})
    assert resp.status_code == 422
    assert "pod updates may not change fields other than" in resp.json()["message"]
    assert container_resources(api, namespace)["limits"]["cpu"] == "200m"


def test_resize_of_a_missing_pod_is_404(api, namespace):
    resp = api.patch(url(namespace, "nope"), headers=STRATEGIC, json={"spec": {}})
    assert resp.status_code == 404
    assert resp.json()["reason"] == "NotFound"


def test_bad_body_is_a_clear_400(api, namespace):
    make_pod(api, namespace)
    resp = api.patch(url(namespace), headers=STRATEGIC, content=b"{not json")
    assert resp.status_code == 400
    assert resp.json()["kind"] == "Status"


def test_discovery_lists_pods_resize(api):
    resources = api.get("/api/v1").json()["resources"]
    resize = next(r for r in resources if r["name"] == "pods/resize")
    assert set(resize["verbs"]) == {"get", "patch", "update"}
