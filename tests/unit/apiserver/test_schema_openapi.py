"""The served /openapi/v3 documents: what kubectl apply (fieldValidation on PATCH), explain (component
schemas with GVK arrays) and client-side strategic merge need, in OpenAPI 3.0 form."""

from __future__ import annotations

import hashlib
import re

import orjson
import pytest

from apiserver.resources import BUILTIN_RESOURCES, ResourceInfo
from apiserver.schema.definitions import SchemaRegistry, default_registry
from apiserver.schema.openapi import OpenAPIDocuments, gv_path

PATCH_TYPES = {
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}


@pytest.fixture(scope="module")
def docs() -> OpenAPIDocuments:
    return OpenAPIDocuments(BUILTIN_RESOURCES)


@pytest.fixture
def registry() -> SchemaRegistry:
    base = default_registry()
    return SchemaRegistry({name: base.definition(name) for name in base.names()})


def load(docs: OpenAPIDocuments, path: str) -> dict:
    body = docs.document(path)
    assert body is not None, path
    return orjson.loads(body)


def walk(node, visit, where=""):
    visit(node, where)
    if isinstance(node, dict):
        for key, value in node.items():
            walk(value, visit, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            walk(value, visit, f"{where}/{index}")


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield path, method, op


def test_index_lists_every_group_version_with_its_hash(docs):
    index = docs.index()
    expected = {gv_path(r.group, r.version) for r in BUILTIN_RESOURCES}
    assert set(index["paths"]) == expected
    for path, entry in index["paths"].items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{path}?hash=")
        digest = url.rpartition("=")[2]
        assert re.fullmatch(r"[0-9A-F]{128}", digest)
        assert digest == hashlib.sha512(docs.document(path)).hexdigest().upper()
        assert docs.hash(path) == digest


def test_hashes_are_stable_across_instances(docs):
    assert OpenAPIDocuments(BUILTIN_RESOURCES).index() == docs.index()


def test_documents_are_cached_and_unknown_paths_are_none(docs):
    assert docs.document("apis/apps/v1") is docs.document("apis/apps/v1")
    assert docs.document("/apis/apps/v1") is docs.document("apis/apps/v1")
    assert docs.document("apis/nope/v1") is None


@pytest.mark.parametrize("path", sorted({gv_path(r.group, r.version) for r in BUILTIN_RESOURCES}))
def test_every_ref_resolves_and_schemas_are_openapi_3_0(docs, path):
    doc = load(docs, path)
    assert doc["openapi"] == "3.0.0"
    schemas = doc["components"]["schemas"]
    problems: list[str] = []

    def visit(node, where):
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if ref is not None:
            if not ref.startswith("#/components/schemas/") or ref.rpartition("/")[2] not in schemas:
                problems.append(f"{where}: dangling {ref}")
            if len(node) > 1:
                problems.append(f"{where}: $ref with siblings {sorted(node)}")
        if isinstance(node.get("type"), list):
            problems.append(f"{where}: type list {node['type']}")
        if None in (node.get("enum") or ()):
            problems.append(f"{where}: null in enum")

    walk(doc, visit)
    assert problems == []


@pytest.mark.parametrize("resource", BUILTIN_RESOURCES, ids=lambda r: f"{r.group}/{r.resource}")
def test_every_resource_patch_has_field_validation_and_a_gvk_object(docs, resource):
    doc = load(docs, gv_path(resource.group, resource.version))
    prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    scope = "/namespaces/{namespace}" if resource.namespaced else ""
    item = doc["paths"][f"{prefix}{scope}/{resource.resource}/{{name}}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": resource.group,
        "version": resource.version,
        "kind": resource.kind,
    }
    assert patch["x-kubernetes-action"] == "patch"
    names = {p["name"] for p in patch["parameters"]}
    assert {"fieldValidation", "fieldManager", "dryRun", "force"} <= names
    assert set(patch["requestBody"]["content"]) == PATCH_TYPES
    assert patch["operationId"].startswith("patch")


def test_every_patch_operation_has_field_validation(docs):
    for path in docs.index()["paths"]:
        for route, method, op in operations(load(docs, path)):
            if method == "patch":
                assert isinstance(op["x-kubernetes-group-version-kind"], dict), route
                assert "fieldValidation" in {p["name"] for p in op["parameters"]}, route


def test_core_document_has_the_namespace_patch_kubectl_checks_for_custom_resources(docs):
    op = load(docs, "api/v1")["paths"]["/api/v1/namespaces/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Namespace"}
    assert "fieldValidation" in {p["name"] for p in op["parameters"]}


def test_namespace_patch_is_there_even_without_namespaces_in_the_resource_list():
    pods_only = [r for r in BUILTIN_RESOURCES if r.resource == "pods"]
    docs = OpenAPIDocuments(pods_only)
    assert "/api/v1/namespaces/{name}" in load(docs, "api/v1")["paths"]


def test_paths_and_operations_follow_the_resource_verbs(docs):
    paths = load(docs, "api/v1")["paths"]
    assert set(paths["/api/v1/namespaces/{namespace}/pods"]) == {"get", "post", "delete", "parameters"}
    assert paths["/api/v1/namespaces/{namespace}/pods"]["get"]["x-kubernetes-action"] == "list"
    assert paths["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert paths["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert set(paths["/api/v1/namespaces/{namespace}/pods/{name}"]) == {
        "get",
        "put",
        "patch",
        "delete",
        "parameters",
    }
    assert "/api/v1/nodes/{name}" in paths and "/api/v1/nodes/{name}/status" in paths
    binding = paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]
    assert set(binding) == {"post", "parameters"}
    assert binding["post"]["x-kubernetes-group-version-kind"]["kind"] == "Binding"


def test_limited_verbs_produce_only_those_operations():
    readonly = ResourceInfo("", "v1", "configmaps", "ConfigMap", True, verbs=("get", "list"))
    paths = load(OpenAPIDocuments([readonly]), "api/v1")["paths"]
    assert set(paths["/api/v1/namespaces/{namespace}/configmaps"]) == {"get", "parameters"}
    assert set(paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]) == {"get", "parameters"}


def test_scale_and_status_subresources(docs):
    doc = load(docs, "apis/apps/v1")
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert set(scale) == {"get", "put", "patch", "parameters"}
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
    }
    assert scale["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentScale"
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]
    status = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["put"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"


def test_components_for_explain(docs):
    schemas = load(docs, "api/v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["type"] == "object"
    assert "enum" not in pod["properties"]["apiVersion"] and "enum" not in pod["properties"]["kind"]
    assert pod["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert schemas["io.k8s.api.core.v1.Container"]["required"] == ["name"]
    for name in ("io.k8s.api.core.v1.PodList", "io.k8s.apimachinery.pkg.apis.meta.v1.Status"):
        assert name in schemas
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["x-kubernetes-int-or-string"] is True and "type" not in int_or_string
    assert "type" not in schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]


def test_only_reachable_schemas_are_included(docs):
    schemas = load(docs, "apis/coordination.k8s.io/v1")["components"]["schemas"]
    assert "io.k8s.api.coordination.v1.Lease" in schemas
    assert "io.k8s.api.core.v1.PodSpec" not in schemas


def test_set_resources_invalidates():
    own = OpenAPIDocuments(BUILTIN_RESOURCES)
    before = own.document("api/v1")
    own.set_resources([r for r in BUILTIN_RESOURCES if r.group != "batch"])
    assert "apis/batch/v1" not in own.index()["paths"]
    assert own.document("api/v1") == before


def test_custom_resources_get_a_document_without_strategic_merge(registry):
    crontabs = ResourceInfo(
        "stable.example.com", "v1", "crontabs", "CronTab", True, "crontab", subresources=()
    )
    docs = OpenAPIDocuments([*BUILTIN_RESOURCES, crontabs], registry=registry)
    assert "apis/stable.example.com/v1" not in docs.index()["paths"]  # no schema yet
    registry.register(
        ("stable.example.com", "v1", "CronTab"),
        {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"cron": {"type": "string"}}}},
        },
    )
    index = docs.index()  # the registry change invalidated the cached documents
    assert "apis/stable.example.com/v1" in index["paths"]
    doc = load(docs, "apis/stable.example.com/v1")
    patch = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    schemas = doc["components"]["schemas"]
    assert schemas["com.example.stable.v1.CronTab"]["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "version": "v1", "kind": "CronTab"}
    ]
    assert (
        schemas["com.example.stable.v1.CronTabList"]["x-kubernetes-group-version-kind"][0]["kind"]
        == "CronTabList"
    )
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    registry.unregister(("stable.example.com", "v1", "CronTab"))
    assert "apis/stable.example.com/v1" not in docs.index()["paths"]
