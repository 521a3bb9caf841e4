"""Strategic merge patch metadata read from the v1.35 schemas matches Kubernetes' struct tags."""

from __future__ import annotations

import pytest

from apiserver.schema.definitions import SchemaRegistry, default_registry
from apiserver.schema.patchmeta import SchemaPatchMeta, has_patch_schema, patch_schema_for
from machinery.patch.schema import UNKNOWN_SCHEMA, PatchSchema
from machinery.patch.strategic import apply_strategic_merge_patch

POD = ("", "v1", "Pod")
DEPLOYMENT = ("apps", "v1", "Deployment")


def path(root, *names):
    node = root
    for name in names:
        node = node.items() if name == "[]" else node.field(name)
        assert node is not None, f"no schema for {name!r}"
    return node


def test_implements_the_patch_schema_protocol():
    assert isinstance(patch_schema_for(POD), PatchSchema)
    assert isinstance(patch_schema_for(POD), SchemaPatchMeta)


def test_pod_containers_merge_by_name():
    containers = path(patch_schema_for(POD), "spec", "containers")
    assert containers.patch_strategy == "merge"
    assert containers.patch_merge_key == "name"
    assert containers.list_type == "map"
    assert containers.list_map_keys == ("name",)
    assert not containers.is_map


def test_deployment_template_containers_merge_by_name():
    containers = path(patch_schema_for(DEPLOYMENT), "spec", "template", "spec", "containers")
    assert (containers.patch_strategy, containers.patch_merge_key) == ("merge", "name")
    ports = path(containers, "[]", "ports")
    assert (ports.patch_strategy, ports.patch_merge_key) == ("merge", "containerPort")
    assert ports.list_map_keys == ("containerPort", "protocol")
    env = path(containers, "[]", "env")
    assert (env.patch_strategy, env.patch_merge_key) == ("merge", "name")


def test_finalizers_are_a_merged_primitive_list():
    finalizers = path(patch_schema_for(POD), "metadata", "finalizers")
    assert finalizers.patch_strategy == "merge"
    assert finalizers.patch_merge_key == ""
    assert finalizers.list_type == "set"
    item = finalizers.items()
    assert item is not None and item.patch_strategy == "" and item.field("x") is None


def test_tolerations_have_no_merge_strategy():
    tolerations = path(patch_schema_for(POD), "spec", "tolerations")
    assert tolerations.patch_strategy == ""
    assert tolerations.patch_merge_key == ""
    assert tolerations.list_type == "atomic"


def test_retain_keys_strategies():
    assert path(patch_schema_for(POD), "spec", "volumes").patch_strategy == "merge,retainKeys"
    # the strategy sits beside a $ref: it belongs to the field, and the type's fields still resolve
    strategy = path(patch_schema_for(DEPLOYMENT), "spec", "strategy")
    assert strategy.patch_strategy == "retainKeys"
    assert path(strategy, "rollingUpdate", "maxSurge").patch_strategy == ""
    pdb_selector = path(patch_schema_for(("policy", "v1", "PodDisruptionBudget")), "spec", "selector")
    assert pdb_selector.patch_strategy == "replace"


def test_maps_give_the_value_schema_for_any_key():
    labels = path(patch_schema_for(POD), "metadata", "labels")
    assert labels.is_map
    assert labels.field("any/key") is not None
    limits = path(patch_schema_for(POD), "spec", "containers", "[]", "resources", "limits")
    assert limits.is_map
    assert not path(patch_schema_for(POD), "spec").is_map


def test_owner_references_merge_by_uid():
    owners = path(patch_schema_for(DEPLOYMENT), "metadata", "ownerReferences")
    assert (owners.patch_strategy, owners.patch_merge_key) == ("merge", "uid")


def test_unknown_fields_and_kinds():
    assert patch_schema_for(POD).field("nope") is None
    assert path(patch_schema_for(POD), "spec", "containers").field("x") is None
    assert patch_schema_for(("example.com", "v1", "Nope")) is UNKNOWN_SCHEMA
    assert not has_patch_schema(("example.com", "v1", "Nope"))
    assert has_patch_schema(POD)


def test_nodes_are_cached():
    root = patch_schema_for(POD)
    assert patch_schema_for(POD) is root
    assert root.field("spec") is root.field("spec")
    assert root.field("spec").field("containers").items() is root.field("spec").field("containers").items()


def test_custom_resource_patch_meta():
    base = default_registry()
    registry = SchemaRegistry({name: base.definition(name) for name in base.names()})
    gvk = ("stable.example.com", "v1", "CronTab")
    registry.register(
        gvk,
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["id"],
                            "items": {"type": "object", "properties": {"id": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    )
    items = path(patch_schema_for(gvk, registry=registry), "spec", "items")
    assert (items.list_type, items.list_map_keys, items.patch_strategy) == ("map", ("id",), "")
    assert path(patch_schema_for(gvk, registry=registry), "metadata", "finalizers").patch_strategy == "merge"


@pytest.mark.parametrize("gvk", [POD, DEPLOYMENT])
def test_strategic_merge_patch_uses_the_metadata(gvk):
    spec = {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}
    obj = {"spec": spec} if gvk == POD else {"spec": {"template": {"spec": spec}}}
    patch_spec = {"containers": [{"name": "b", "image": "b:2"}]}
    patch = {"spec": patch_spec} if gvk == POD else {"spec": {"template": {"spec": patch_spec}}}
    merged = apply_strategic_merge_patch(obj, patch, patch_schema_for(gvk))
    containers = (
        merged["spec"]["containers"] if gvk == POD else merged["spec"]["template"]["spec"]["containers"]
    )
    assert containers == [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]
