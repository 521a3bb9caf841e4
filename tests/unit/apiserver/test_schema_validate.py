"""Schema validation, unknown-field detection/pruning and duplicate-key detection against v1.35 schemas.

Paths and messages are the ones a v1.35 API server reports (``spec.containers[0].image``,
``strict decoding error: unknown field "..."``).
"""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiserver.schema.definitions import SchemaRegistry, default_registry, gvk_of
from apiserver.schema.validate import (
    duplicate_fields,
    prune_unknown,
    strict_decoding_error,
    strict_problems,
    unknown_fields,
    validate_object,
)
from machinery import errors

POD_GVK = ("", "v1", "Pod")
DEPLOYMENT_GVK = ("apps", "v1", "Deployment")


def make_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"a": "b"},
            "creationTimestamp": None,
        },
        "spec": {
            "containers": [
                {
                    "name": "nginx",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def make_deployment() -> dict:
    pod = make_pod()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]},
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {
        "type": "ClusterIP",
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    },
}

CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cfg"},
    "data": {"app.properties": "a=b\nc: d", "any-key": "x"},
    "binaryData": {"blob": "aGVsbG8="},
}


def by_field(errs: list[errors.FieldError]) -> dict[str, errors.FieldError]:
    return {e.field: e for e in errs}


@pytest.fixture
def registry() -> SchemaRegistry:
    """A private registry (custom resources registered here do not leak into other tests)."""
    base = default_registry()
    return SchemaRegistry({name: base.definition(name) for name in base.names()})


# --- validate_object ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [make_pod(), make_deployment(), SERVICE, CONFIGMAP],
    ids=["pod", "deployment", "service", "configmap"],
)
def test_valid_objects_pass(obj):
    gvk = gvk_of(obj)
    assert validate_object(obj, gvk) == []
    assert unknown_fields(obj, gvk) == []


def test_validation_does_not_mutate():
    pod = make_pod()
    pod["spec"]["containers"][0]["image"] = 5
    before = copy.deepcopy(pod)
    validate_object(pod, POD_GVK)
    assert pod == before


def test_wrong_types_are_reported_with_field_paths():
    pod = make_pod()
    container = pod["spec"]["containers"][0]
    container["image"] = 5
    container["ports"][0]["containerPort"] = "eighty"
    pod["spec"]["hostNetwork"] = "yes"
    errs = by_field(validate_object(pod, POD_GVK))
    assert set(errs) == {
        "spec.containers[0].image",
        "spec.containers[0].ports[0].containerPort",
        "spec.hostNetwork",
    }
    image = errs["spec.containers[0].image"]
    assert image.type == errors.TYPE_INVALID
    assert str(image) == (
        'spec.containers[0].image: Invalid value: "integer": '
        'spec.containers[0].image in body must be of type string: "integer"'
    )
    assert "must be of type integer" in errs["spec.containers[0].ports[0].containerPort"].detail


def test_deployment_paths_go_through_the_template():
    dep = make_deployment()
    dep["spec"]["replicas"] = "3"
    del dep["spec"]["template"]["spec"]["containers"][0]["name"]
    errs = by_field(validate_object(dep, DEPLOYMENT_GVK))
    assert errs["spec.replicas"].type == errors.TYPE_INVALID
    assert errs["spec.template.spec.containers[0].name"].type == errors.REQUIRED
    assert (
        str(errs["spec.template.spec.containers[0].name"])
        == "spec.template.spec.containers[0].name: Required value"
    )


def test_required_fields():
    dep = make_deployment()
    del dep["spec"]["selector"]
    assert [(e.type, e.field) for e in validate_object(dep, DEPLOYMENT_GVK)] == [
        (errors.REQUIRED, "spec.selector")
    ]
    pod = make_pod()
    del pod["spec"]["containers"]
    assert [e.field for e in validate_object(pod, POD_GVK)] == ["spec.containers"]


def test_null_is_accepted_for_optional_fields():
    pod = make_pod()
    container = pod["spec"]["containers"][0]
    container["imagePullPolicy"] = None
    container["resources"]["limits"]["cpu"] = None  # Quantity
    pod["spec"]["nodeSelector"] = None
    pod["metadata"]["deletionTimestamp"] = None
    dep = make_deployment()
    dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = None  # IntOrString
    assert validate_object(pod, POD_GVK) == []
    assert validate_object(dep, DEPLOYMENT_GVK) == []


def test_int_or_string_and_quantity():
    svc = copy.deepcopy(SERVICE)
    svc["spec"]["ports"][0]["targetPort"] = "http"
    assert validate_object(svc, ("", "v1", "Service")) == []
    svc["spec"]["ports"][0]["targetPort"] = True
    (err,) = validate_object(svc, ("", "v1", "Service"))
    assert err.field == "spec.ports[0].targetPort" and err.type == errors.TYPE_INVALID
    pod = make_pod()
    pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = ["1"]
    (err,) = validate_object(pod, POD_GVK)
    assert err.field == "spec.containers[0].resources.limits[cpu]"


def test_int32_bounds_and_formats():
    pod = make_pod()
    pod["spec"]["priority"] = 2**31
    pod["metadata"]["creationTimestamp"] = "yesterday"
    errs = by_field(validate_object(pod, POD_GVK))
    assert errs["spec.priority"].type == errors.INVALID
    assert "less than or equal to 2147483647" in errs["spec.priority"].detail
    assert errs["metadata.creationTimestamp"].type == errors.INVALID
    pod["spec"]["priority"] = 2**31 - 1
    pod["metadata"]["creationTimestamp"] = "2025-01-02T03:04:05Z"
    assert validate_object(pod, POD_GVK) == []


def test_secret_data_must_be_base64():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"ok": "aGk=", "bad": "!!"},
    }
    (err,) = validate_object(secret, ("", "v1", "Secret"))
    assert err.field == "data[bad]" and err.type == errors.INVALID


def test_map_values_use_bracket_paths():
    pod = make_pod()
    pod["metadata"]["labels"]["app.kubernetes.io/name"] = 3
    (err,) = validate_object(pod, POD_GVK)
    assert err.field == "metadata.labels[app.kubernetes.io/name]"


def test_apiversion_and_kind_enums_are_left_to_the_server():
    pod = make_pod()
    pod["kind"] = "Deployment"
    assert validate_object(pod, POD_GVK) == []


def test_kinds_without_schema_are_not_checked():
    assert validate_object({"spec": 1}, ("example.com", "v1", "Nope")) == []
    assert unknown_fields({"spec": 1}, ("example.com", "v1", "Nope")) == []


# --- unknown fields -----------------------------------------------------------------------------


def test_unknown_fields_at_every_depth():
    pod = make_pod()
    pod["spec"]["containers"][0]["bogusField"] = 1
    pod["metadata"]["foo"] = "bar"
    pod["extra"] = {"nested": 1}
    pod["spec"]["volumes"][0]["emptyDir"]["typo"] = True
    assert unknown_fields(pod, POD_GVK) == [
        "metadata.foo",
        "spec.containers[0].bogusField",
        "spec.volumes[0].emptyDir.typo",
        "extra",
    ]


def test_unknown_fields_in_a_deployment_template():
    dep = make_deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyTYPO"] = "Always"
    dep["spec"]["template"]["metadata"]["labelz"] = {}
    assert unknown_fields(dep, DEPLOYMENT_GVK) == [
        "spec.template.metadata.labelz",
        "spec.template.spec.containers[0].imagePullPolicyTYPO",
    ]


def test_maps_and_free_form_fields_have_no_unknown_keys():
    pod = make_pod()
    pod["metadata"]["labels"]["anything.goes/here"] = "x"
    pod["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:x": {}}},
        }
    ]
    pod["spec"]["nodeSelector"] = {"whatever": "x"}
    assert unknown_fields(pod, POD_GVK) == []
    assert unknown_fields(CONFIGMAP, ("", "v1", "ConfigMap")) == []
    revision = {  # ControllerRevision.data is a RawExtension: any JSON
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "r"},
        "revision": 1,
        "data": {"spec": {"template": {"anything": [1, {"x": 2}]}}},
    }
    assert unknown_fields(revision, ("apps", "v1", "ControllerRevision")) == []


def test_unknown_fields_ignores_wrong_shapes():
    pod = make_pod()
    pod["spec"]["containers"] = {"not": "a list"}  # a type error, reported by validate_object
    assert unknown_fields(pod, POD_GVK) == []


def test_prune_unknown_removes_only_unknown_fields():
    pod = make_pod()
    pod["spec"]["containers"][0]["bogusField"] = 1
    pod["metadata"]["foo"] = "bar"
    expected = make_pod()
    pruned = prune_unknown(pod, POD_GVK)
    assert pruned is pod  # pruned in place: the decoded request body belongs to the request
    assert pruned == expected
    assert unknown_fields(pruned, POD_GVK) == []


def test_prune_unknown_without_unknown_fields_changes_nothing():
    pod = make_pod()
    assert prune_unknown(pod, POD_GVK) == make_pod()


# --- custom resources ---------------------------------------------------------------------------

CRONTAB_GVK = ("stable.example.com", "v1", "CronTab")
CRONTAB_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^\S+ \S+ \S+ \S+ \S+$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "format": "int32"},
                "port": {"x-kubernetes-int-or-string": True},
                "mode": {"type": "string", "enum": ["fast", "slow"], "nullable": True},
                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "empty": {"type": "object"},
                "interval": {"type": "string", "format": "duration"},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


def make_crontab() -> dict:
    return {
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "ct", "labels": {"a": "b"}},
        "spec": {"cronSpec": "* * * * */5", "replicas": 2, "port": "http", "mode": None, "interval": "1h30m"},
    }


def test_custom_resource_validation(registry):
    name = registry.register(CRONTAB_GVK, CRONTAB_SCHEMA)
    assert name == "com.example.stable.v1.CronTab"
    assert validate_object(make_crontab(), CRONTAB_GVK, registry=registry) == []
    bad = make_crontab()
    bad["spec"].update(cronSpec="nope", replicas=11, port=1.5, mode="medium")
    errs = by_field(validate_object(bad, CRONTAB_GVK, registry=registry))
    assert set(errs) == {"spec.cronSpec", "spec.replicas", "spec.port", "spec.mode"}
    assert errs["spec.mode"].type == errors.NOT_SUPPORTED
    assert (
        str(errs["spec.mode"]) == 'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"'
    )
    assert "less than or equal to 10" in errs["spec.replicas"].detail
    del bad["spec"]["cronSpec"]
    assert "spec.cronSpec" in {e.field for e in validate_object(bad, CRONTAB_GVK, registry=registry)}


def test_custom_resource_unknown_fields(registry):
    registry.register(CRONTAB_GVK, CRONTAB_SCHEMA)
    ct = make_crontab()
    ct["spec"]["config"] = {"free": {"form": [1, 2]}}
    ct["spec"]["empty"] = {"dropped": 1}
    ct["spec"]["typo"] = 1
    ct["metadata"]["foo"] = 1  # metadata is ObjectMeta whatever the CRD says
    assert unknown_fields(ct, CRONTAB_GVK, registry=registry) == [
        "metadata.foo",
        "spec.empty.dropped",
        "spec.typo",
    ]
    prune_unknown(ct, CRONTAB_GVK, registry=registry)
    assert ct["spec"]["empty"] == {} and "typo" not in ct["spec"] and ct["spec"]["config"]


def test_reregistering_a_custom_resource_replaces_its_schema(registry):
    registry.register(CRONTAB_GVK, CRONTAB_SCHEMA)
    ct = make_crontab()
    ct["spec"]["newField"] = "x"
    assert unknown_fields(ct, CRONTAB_GVK, registry=registry) == ["spec.newField"]
    widened = copy.deepcopy(CRONTAB_SCHEMA)
    widened["properties"]["spec"]["properties"]["newField"] = {"type": "integer"}
    registry.register(CRONTAB_GVK, widened)
    assert unknown_fields(ct, CRONTAB_GVK, registry=registry) == []
    assert [e.field for e in validate_object(ct, CRONTAB_GVK, registry=registry)] == ["spec.newField"]
    registry.unregister(CRONTAB_GVK)
    assert registry.name_for(CRONTAB_GVK) is None
    assert validate_object(ct, CRONTAB_GVK, registry=registry) == []


def test_builtin_kinds_cannot_be_replaced(registry):
    with pytest.raises(ValueError):
        registry.register(POD_GVK, {"type": "object"})


def test_custom_resource_with_preserve_unknown_root(registry):
    gvk = ("example.com", "v1", "Anything")
    registry.register(gvk, {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Anything",
        "metadata": {"name": "a", "bad": 1},
        "x": {"y": 1},
    }
    assert unknown_fields(obj, gvk, registry=registry) == ["metadata.bad"]


# --- duplicate fields ---------------------------------------------------------------------------


def test_duplicate_fields_are_found_with_paths():
    body = (
        b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","name":"y"},'
        b'"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":'
        b'[{"name":"a","image":"b:1","image":"c:2"}]}}}}'
    )
    assert duplicate_fields(body) == [
        "metadata.name",
        "spec.replicas",
        "spec.template.spec.containers[0].image",
    ]
    assert duplicate_fields(b'{"replicas": 1, "replicas": 1}') == ["replicas"]


def test_no_duplicates():
    body = orjson.dumps(make_deployment())
    assert duplicate_fields(body) == []
    assert duplicate_fields(body, orjson.loads(body)) == []
    # colons inside strings and repeated keys in *different* objects are not duplicates
    assert duplicate_fields(b'{"a": "x:y:z", "b": {"a": "1:2"}, "c": [{"a": 1}, {"a": 2}]}') == []


def test_duplicates_hidden_behind_escaped_colons_are_still_found():
    assert duplicate_fields(b'{"k\\u003a": 1, "a": 1, "a": 2}') == ["a"]


def test_non_json_bodies_report_nothing():
    assert duplicate_fields(b"apiVersion: v1\nkind: Pod\n") == []
    assert duplicate_fields(b"") == []


_KEYS = st.sampled_from(["a", "b", "c:d", 'q"', "\u00e9", "x"])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["", "s:t", "\\", "\u003a"])
)


def _members(children):
    return st.lists(st.tuples(_KEYS, children), max_size=4)


_TREES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3), _members(children).map(lambda m: ("obj", m))),
    max_leaves=12,
)


def _encode(tree) -> str:
    """JSON text that keeps repeated keys (a dict could not)."""
    if isinstance(tree, tuple):
        return "{" + ",".join(f"{json.dumps(k)}:{_encode(v)}" for k, v in tree[1]) + "}"
    if isinstance(tree, list):
        return "[" + ",".join(_encode(v) for v in tree) + "]"
    return json.dumps(tree)


def _expected(tree, path="") -> list[str]:
    out: list[str] = []
    if isinstance(tree, tuple):
        seen: dict[str, object] = {}
        dups: list[str] = []
        for key, value in tree[1]:
            if key in seen and key not in dups:
                dups.append(key)
            seen[key] = value
        out += [f"{path}.{k}" if path else k for k in dups]
        for key, value in seen.items():
            out += _expected(value, f"{path}.{key}" if path else key)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _expected(value, f"{path}[{i}]")
    return out


@settings(max_examples=300, deadline=None)
@given(_TREES.filter(lambda t: isinstance(t, (tuple, list))))
def test_duplicate_fields_fast_path_agrees_with_a_full_parse(tree):
    body = _encode(tree).encode()
    assert duplicate_fields(body) == _expected(tree)


# --- how the server reports problems ------------------------------------------------------------


def test_strict_decoding_error_text():
    problems = strict_problems(["spec.containers[0].bogusField"], ["spec.replicas"])
    assert problems == ['unknown field "spec.containers[0].bogusField"', 'duplicate field "spec.replicas"']
    err = strict_decoding_error(problems)
    assert err.code == 400 and err.reason == "BadRequest"
    assert err.message == (
        "strict decoding error: "
        'unknown field "spec.containers[0].bogusField", duplicate field "spec.replicas"'
    )
