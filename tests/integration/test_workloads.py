"""The alpha Workload API (scheduling.k8s.io/v1alpha1, Kubernetes 1.35) against a real API server:
CRUD, validation with field paths, immutability, discovery, OpenAPI and ``kubectl get workloads``.

Gang scheduling depends on Workloads being well-formed (a pod of a gang whose group is malformed
would wait forever), so the rejections are checked field by field."""

from __future__ import annotations

import json

WORKLOADS = "/apis/scheduling.k8s.io/v1alpha1"
DISCOVERY_V2_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
MERGE = {"Content-Type": "application/merge-patch+json"}


def workloads_path(namespace: str, name: str = "") -> str:
    path = f"{WORKLOADS}/namespaces/{namespace}/workloads"
    return f"{path}/{name}" if name else path


def workload(name: str, *groups: dict, controller_ref: dict | None = None) -> dict:
    spec: dict = {"podGroups": list(groups) or [gang("workers", 4)]}
    if controller_ref is not None:
        spec["controllerRef"] = controller_ref
    return {"apiVersion": "scheduling.k8s.io/v1alpha1", "kind": "Workload", "metadata": {"name": name},
            "spec": spec}


def gang(name: str, min_count: int) -> dict:
    return {"name": name, "policy": {"gang": {"minCount": min_count}}}


def basic(name: str) -> dict:
    return {"name": name, "policy": {"basic": {}}}


def create(api, namespace: str, obj: dict):
    return api.post(workloads_path(namespace), json=obj)


def causes(resp) -> dict[str, str]:
    """field -> message of a 422 Invalid response."""
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["reason"] == "Invalid" and body["details"]["kind"] == "Workload", body
    assert body["details"]["group"] == "scheduling.k8s.io", body
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


def test_create_get_list_delete(api, namespace):
    obj = workload("training", gang("workers", 4), basic("driver"),
                   controller_ref={"apiGroup": "batch", "kind": "Job", "name": "training"})
    resp = create(api, namespace, obj)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["kind"] == "Workload" and created["apiVersion"] == "scheduling.k8s.io/v1alpha1"
    assert created["spec"] == obj["spec"]
    assert "status" not in created

    got = api.get(workloads_path(namespace, "training"))
    assert got.status_code == 200 and got.json()["spec"]["podGroups"][0]["policy"]["gang"]["minCount"] == 4

    listed = api.get(workloads_path(namespace)).json()
    assert listed["kind"] == "WorkloadList" and [i["metadata"]["name"] for i in listed["items"]] == ["training"]
    everywhere = api.get(f"{WORKLOADS}/workloads").json()
    assert ("training", namespace) in {(i["metadata"]["name"], i["metadata"]["namespace"]) for i in everywhere["items"]}

    assert api.delete(workloads_path(namespace, "training")).status_code == 200
    assert api.get(workloads_path(namespace, "training")).status_code == 404


def test_no_status_subresource(api, namespace):
    assert create(api, namespace, workload("w")).status_code == 201
    assert api.get(workloads_path(namespace, "w") + "/status").status_code == 404


def test_pod_groups_are_required(api, namespace):
    obj = workload("empty")
    obj["spec"]["podGroups"] = []
    assert causes(create(api, namespace, obj)) == {"spec.podGroups": "Required value: must have at least one item"}


def test_at_most_eight_pod_groups(api, namespace):
    obj = workload("many", *(basic(f"g{i}") for i in range(9)))
    assert causes(create(api, namespace, obj)) == {"spec.podGroups": "Too many: 9: must have at most 8 items"}
    assert create(api, namespace, workload("eight", *(basic(f"g{i}") for i in range(8)))).status_code == 201


def test_pod_group_names_are_unique_dns_labels(api, namespace):
    found = causes(create(api, namespace, workload("names", gang("a", 1), gang("a", 2), basic("Not_A_Label"))))
    assert found["spec.podGroups[1].name"] == 'Duplicate value: "a"'
    assert found["spec.podGroups[2].name"].startswith('Invalid value: "Not_A_Label": a lowercase RFC 1123 label')
    assert len(found) == 2


def test_exactly_one_policy(api, namespace):
    neither = {"name": "neither", "policy": {}}
    both = {"name": "both", "policy": {"basic": {}, "gang": {"minCount": 2}}}
    found = causes(create(api, namespace, workload("policies", neither, both)))
    assert found == {
        "spec.podGroups[0].policy": "Required value: exactly one of `basic`, `gang` is required",
        "spec.podGroups[1].policy": 'Invalid value: "{`basic`, `gang`}": exactly one of `basic`, `gang` is '
                                    "required, but multiple fields are set",
    }


def test_gang_min_count_must_be_positive(api, namespace):
    found = causes(create(api, namespace, workload("counts", gang("zero", 0), gang("negative", -3))))
    assert found == {
        "spec.podGroups[0].policy.gang.minCount": "Invalid value: 0: must be greater than zero",
        "spec.podGroups[1].policy.gang.minCount": "Invalid value: -3: must be greater than zero",
    }


def test_controller_ref_needs_kind_and_name(api, namespace):
    ref = {"apiGroup": ".bad", "kind": "", "name": "a/b"}
    found = causes(create(api, namespace, workload("ref", controller_ref=ref)))
    assert set(found) == {"spec.controllerRef.apiGroup", "spec.controllerRef.kind", "spec.controllerRef.name"}
    assert found["spec.controllerRef.name"] == "Invalid value: \"a/b\": may not contain '/'"


def test_pod_groups_are_immutable(api, namespace):
    assert create(api, namespace, workload("fixed", gang("workers", 4))).status_code == 201
    path = workloads_path(namespace, "fixed")
    resp = api.patch(path, json={"spec": {"podGroups": [gang("workers", 2)]}}, headers=MERGE)
    found = causes(resp)
    assert list(found) == ["spec.podGroups"] and found["spec.podGroups"].endswith("field is immutable")
    # metadata may change, and a controllerRef may be set once but not changed afterwards
    assert api.patch(path, json={"metadata": {"labels": {"team": "ml"}}}, headers=MERGE).status_code == 200
    ref = {"apiGroup": "batch", "kind": "Job", "name": "fixed"}
    assert api.patch(path, json={"spec": {"controllerRef": ref}}, headers=MERGE).status_code == 200
    changed = api.patch(path, json={"spec": {"controllerRef": {**ref, "name": "other"}}}, headers=MERGE)
    assert list(causes(changed)) == ["spec.controllerRef"]


def test_pod_workload_ref_is_kept_and_immutable(api, namespace):
    pod = {"metadata": {"name": "member"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}],
                    "workloadRef": {"name": "training", "podGroup": "workers", "podGroupReplicaKey": "0"}}}
    resp = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert resp.status_code == 201, resp.text
    assert resp.json()["spec"]["workloadRef"] == pod["spec"]["workloadRef"]
    changed = api.patch(f"/api/v1/namespaces/{namespace}/pods/member",
                        json={"spec": {"workloadRef": {"name": "other", "podGroup": "workers"}}}, headers=MERGE)
    assert changed.status_code == 422, changed.text
    assert "pod updates may not change fields" in changed.text


def test_discovery_lists_workloads_under_v1alpha1(api):
    resources = api.get(WORKLOADS).json()
    assert resources["groupVersion"] == "scheduling.k8s.io/v1alpha1"
    entry = next(r for r in resources["resources"] if r["name"] == "workloads")
    assert entry["kind"] == "Workload" and entry["namespaced"] is True and entry["singularName"] == "workload"
    assert set(entry["verbs"]) == {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
    assert "shortNames" not in entry
    assert not any(r["name"].startswith("workloads/") for r in resources["resources"])

    group = api.get("/apis/scheduling.k8s.io").json()
    assert [v["version"] for v in group["versions"]] == ["v1", "v1alpha1"]
    assert group["preferredVersion"]["version"] == "v1"

    aggregated = api.get("/apis", headers={"Accept": DISCOVERY_V2_ACCEPT}).json()
    scheduling = next(g for g in aggregated["items"] if g["metadata"]["name"] == "scheduling.k8s.io")
    by_version = {v["version"]: [r["resource"] for r in v["resources"]] for v in scheduling["versions"]}
    assert by_version["v1alpha1"] == ["workloads"] and "priorityclasses" in by_version["v1"]


def test_openapi_serves_the_workload_schema(api):
    doc = api.get("/openapi/v3/apis/scheduling.k8s.io/v1alpha1").json()
    assert "io.k8s.api.scheduling.v1alpha1.Workload" in doc["components"]["schemas"]
    assert "/apis/scheduling.k8s.io/v1alpha1/namespaces/{namespace}/workloads" in doc["paths"]


def test_watch_sees_created_workloads(api, namespace):
    rv = api.get(workloads_path(namespace)).json()["metadata"]["resourceVersion"]
    assert create(api, namespace, workload("watched")).status_code == 201
    with api.stream("GET", workloads_path(namespace),
                    params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "5"}) as stream:
        first = json.loads(next(stream.iter_lines()))
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "watched"


def test_kubectl_get_workloads(api, namespace, kubectl):
    manifest = json.dumps(workload("from-kubectl", gang("workers", 2), basic("driver")))
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    table = kubectl("get", "workloads", "-n", namespace)
    lines = table.strip().splitlines()
    assert lines[0].split() == ["NAME", "AGE"]
    assert lines[1].split()[0] == "from-kubectl"
    as_json = json.loads(kubectl("get", "workload.scheduling.k8s.io", "from-kubectl", "-n", namespace, "-o", "json"))
    assert as_json["spec"]["podGroups"][0] == gang("workers", 2)
    bad = kubectl.run("apply", "-n", namespace, "-f", "-", check=False,
                      input=json.dumps(workload("bad", gang("workers", 0))))
    assert bad.returncode != 0 and "spec.podGroups[0].policy.gang.minCount" in bad.stderr
