"""Strategic merge patch as kube-apiserver applies it: the bodies kubectl and the Python client send."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.patch import PatchError
from machinery.patch.merge import apply_merge_patch
from machinery.patch.schema import UNKNOWN_SCHEMA, DictPatchSchema, PatchSchema
from machinery.patch.strategic import apply_strategic_merge_patch

# --- a schema shaped like the v1.35 Deployment / Pod definitions ----------------------------

MERGE_BY_NAME = {"strategy": "merge", "mergeKey": "name", "listType": "map", "listMapKeys": ["name"]}
CONTAINER = {
    "fields": {
        "args": {"listType": "atomic"},
        "command": {"listType": "atomic"},
        "env": {**MERGE_BY_NAME, "items": {"fields": {"valueFrom": {"fields": {}}}}},
        "ports": {
            "strategy": "merge",
            "mergeKey": "containerPort",
            "listType": "map",
            "listMapKeys": ["containerPort", "protocol"],
        },
        "volumeMounts": {"strategy": "merge", "mergeKey": "mountPath", "listType": "atomic"},
        "resources": {"fields": {"limits": {"values": {}}, "requests": {"values": {}}}},
    }
}
OBJECT_META = {
    "fields": {
        "labels": {"values": {}},
        "annotations": {"values": {}},
        "finalizers": {"strategy": "merge", "listType": "set"},
        "ownerReferences": {
            "strategy": "merge",
            "mergeKey": "uid",
            "listType": "map",
            "listMapKeys": ["uid"],
        },
    }
}
POD_SPEC = {
    "fields": {
        "containers": {**MERGE_BY_NAME, "items": CONTAINER},
        "initContainers": {**MERGE_BY_NAME, "items": CONTAINER},
        "volumes": {**MERGE_BY_NAME, "strategy": "merge,retainKeys"},
        "tolerations": {"listType": "atomic"},
        "nodeSelector": {"values": {}},
    }
}
DEPLOYMENT_SCHEMA = DictPatchSchema(
    {
        "fields": {
            "metadata": OBJECT_META,
            "spec": {
                "fields": {
                    "selector": {"fields": {"matchLabels": {"values": {}}}},
                    "strategy": {"strategy": "retainKeys", "fields": {"rollingUpdate": {}}},
                    "template": {"fields": {"metadata": OBJECT_META, "spec": POD_SPEC}},
                }
            },
            "status": {"fields": {"conditions": {"strategy": "merge", "mergeKey": "type"}}},
        }
    }
)
POD_SCHEMA = DictPatchSchema({"fields": {"metadata": OBJECT_META, "spec": POD_SPEC}})


def apply(original: dict, patch: dict, schema: PatchSchema = POD_SCHEMA) -> dict:
    return apply_strategic_merge_patch(original, patch, schema)


def pod(*containers: dict, **spec) -> dict:
    return {"metadata": {"name": "web"}, "spec": {"containers": list(containers), **spec}}


def names(items: list[dict]) -> list:
    return [item["name"] for item in items]


def directive_keys(value) -> list[str]:
    """Every key starting with ``$`` anywhere in ``value``."""
    if isinstance(value, dict):
        return [k for k in value if k.startswith("$")] + [
            k for v in value.values() for k in directive_keys(v)
        ]
    if isinstance(value, list):
        return [k for v in value for k in directive_keys(v)]
    return []


def live_deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "4f3c9a1e-0000-4000-8000-000000000001",
            "resourceVersion": "1234",
            "generation": 2,
            "labels": {"app": "web"},
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "kubectl.kubernetes.io/last-applied-configuration": '{"old":true}\n',
            },
        },
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 1,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


# --- client-side apply ----------------------------------------------------------------------


def test_client_side_apply_body_changes_only_what_the_manifest_changed():
    new_last_applied = '{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":3}}\n'
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": new_last_applied}},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}],
                    "containers": [{"image": "nginx:1.28", "name": "nginx"}],
                }
            },
        },
    }
    expected = live_deployment()
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = new_last_applied
    expected["spec"]["replicas"] = 3
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"

    assert apply(live_deployment(), patch, DEPLOYMENT_SCHEMA) == expected


def test_apply_adding_a_container_puts_it_where_the_manifest_has_it():
    live = pod({"name": "nginx", "image": "nginx"}, {"name": "log", "image": "busybox"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "metrics"}, {"name": "log"}],
            "containers": [{"name": "metrics", "image": "prom"}],
        }
    }

    result = apply(live, patch)

    assert result["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx"},
        {"name": "metrics", "image": "prom"},
        {"name": "log", "image": "busybox"},
    ]


def test_apply_removing_a_container_sends_a_delete_directive():
    live = pod({"name": "nginx", "image": "nginx"}, {"name": "log", "image": "busybox"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"$patch": "delete", "name": "log"}],
        }
    }

    assert apply(live, patch)["spec"]["containers"] == [{"name": "nginx", "image": "nginx"}]


def test_set_element_order_alone_reorders_the_list():
    live = pod({"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}

    assert names(apply(live, patch)["spec"]["containers"]) == ["c", "a", "b"]


def test_set_element_order_ignores_names_the_list_does_not_have():
    live = pod({"name": "a"}, {"name": "c"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
            "containers": [{"name": "c", "image": "x"}, {"name": "a", "image": "y"}],
        }
    }

    assert apply(live, patch)["spec"]["containers"] == [
        {"name": "c", "image": "x"},
        {"name": "a", "image": "y"},
    ]


def test_items_only_on_the_server_are_interleaved_by_their_live_position():
    # "sidecar" was live before "c", so it stays before c whatever the new order of a, b and c.
    live = pod({"name": "a"}, {"name": "b"}, {"name": "sidecar"}, {"name": "c"}, {"name": "tail"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}}

    assert names(apply(live, patch)["spec"]["containers"]) == ["sidecar", "c", "b", "a", "tail"]


def test_renaming_a_container_keeps_a_server_only_sidecar_before_the_new_one():
    # apimachinery interleaves against the live list as it stands after the deletion, in which the
    # added container takes the freed slot; its own tests pin this order.
    live = pod({"name": "app"}, {"name": "sidecar", "image": "proxy"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "app2"}],
            "containers": [{"name": "app2", "image": "v2"}, {"$patch": "delete", "name": "app"}],
        }
    }

    result = apply(live, patch)

    assert result["spec"]["containers"] == [
        {"name": "sidecar", "image": "proxy"},
        {"name": "app2", "image": "v2"},
    ]


def test_set_element_order_must_list_the_patch_items_in_the_same_order():
    live = pod({"name": "a"}, {"name": "b"})
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "y"}],
        }
    }

    with pytest.raises(PatchError, match="doesn't match"):
        apply(live, patch)


def test_set_element_order_of_a_primitive_list():
    live = {"metadata": {"finalizers": ["a", "b", "c"]}}

    result = apply(live, {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}})

    assert result["metadata"]["finalizers"] == ["c", "a", "b"]


def test_nested_merge_lists_with_their_own_order_directive():
    live = pod(
        {
            "name": "app",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
        }
    )
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [
                {
                    "name": "app",
                    "$setElementOrder/env": [{"name": "C"}, {"name": "A"}, {"name": "B"}],
                    "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "one"}],
                    "ports": [
                        {"containerPort": 443, "protocol": "TCP"},
                        {"containerPort": 80, "name": "http"},
                    ],
                }
            ],
        }
    }

    (container,) = apply(live, patch)["spec"]["containers"]

    assert container["env"] == [
        {"name": "C", "value": "3"},
        {"name": "A", "value": "one"},
        {"name": "B", "value": "2"},
    ]
    assert container["ports"] == [
        {"containerPort": 443, "protocol": "TCP"},
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
    ]


# --- kubectl patch / set image (no order directive) -----------------------------------------


def test_set_image_merges_into_the_named_container_only():
    live = pod({"name": "nginx", "image": "nginx:1.27", "args": ["-g"]}, {"name": "log", "image": "busybox"})

    result = apply(live, {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}})

    assert result["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.28", "args": ["-g"]},
        {"name": "log", "image": "busybox"},
    ]


def test_a_container_added_without_order_directive_comes_before_the_existing_ones():
    # The "kubectl patch" task page shows the same: the added redis container is listed first.
    live = pod({"name": "patch-demo-ctr", "image": "nginx"})

    result = apply(live, {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}})

    assert names(result["spec"]["containers"]) == ["patch-demo-ctr-2", "patch-demo-ctr"]


def test_patch_order_wins_for_named_items_and_others_keep_their_relative_place():
    live = pod({"name": "a"}, {"name": "b", "image": "b"}, {"name": "c"})

    result = apply(live, {"spec": {"containers": [{"name": "c", "image": "c"}, {"name": "a", "image": "a"}]}})

    assert result["spec"]["containers"] == [
        {"name": "b", "image": "b"},
        {"name": "c", "image": "c"},
        {"name": "a", "image": "a"},
    ]


def test_env_merges_by_name_and_null_removes_a_field_of_an_item():
    live = pod({"name": "app", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]})
    patch = {
        "spec": {
            "containers": [
                {"name": "app", "env": [{"name": "A", "value": None}, {"name": "B", "value": "x"}]}
            ]
        }
    }

    (container,) = apply(live, patch)["spec"]["containers"]

    assert container["env"] == [{"name": "A"}, {"name": "B", "value": "x"}]


def test_delete_directive_removes_every_item_with_that_key():
    live = pod({"name": "a"}, {"name": "b"}, {"name": "a", "image": "dup"})

    result = apply(live, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})

    assert result["spec"]["containers"] == [{"name": "b"}]


def test_delete_directive_for_a_missing_item_is_a_no_op():
    live = pod({"name": "a"})
    assert apply(live, {"spec": {"containers": [{"name": "zzz", "$patch": "delete"}]}}) == live


def test_merge_key_values_match_by_json_type_and_value():
    live = pod({"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}]})
    patch = {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": "80", "protocol": "UDP"}]}]}}

    (container,) = apply(live, patch)["spec"]["containers"]

    assert container["ports"] == [
        {"containerPort": "80", "protocol": "UDP"},
        {"containerPort": 80, "protocol": "TCP"},
    ]


# --- lists that do not merge ------------------------------------------------------------------


def test_atomic_lists_are_replaced():
    live = pod(
        {"name": "app", "args": ["a", "b"], "command": ["sh"]},
        tolerations=[{"key": "k1", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}],
    )
    patch = {
        "spec": {
            "containers": [{"name": "app", "args": ["c"]}],
            "tolerations": [{"key": "k3", "operator": "Exists", "effect": None}],
        }
    }

    result = apply(live, patch)

    assert result["spec"]["containers"] == [{"name": "app", "args": ["c"], "command": ["sh"]}]
    assert result["spec"]["tolerations"] == [{"key": "k3", "operator": "Exists"}]


def test_list_type_map_without_a_patch_strategy_is_replaced():
    # Strategic merge reads only patch strategy and merge key; x-kubernetes-list-type alone does not merge.
    schema = DictPatchSchema(
        {
            "fields": {
                "status": {"fields": {"devices": {"listType": "map", "listMapKeys": ["driver", "device"]}}}
            }
        }
    )
    live = {"status": {"devices": [{"driver": "gpu", "device": "0"}, {"driver": "gpu", "device": "1"}]}}

    result = apply(live, {"status": {"devices": [{"driver": "gpu", "device": "1", "ready": True}]}}, schema)

    assert result == {"status": {"devices": [{"driver": "gpu", "device": "1", "ready": True}]}}


def test_lists_of_lists_are_replaced_even_with_merge_metadata():
    schema = DictPatchSchema({"fields": {"matrix": {"strategy": "merge"}}})

    result = apply({"matrix": [[1, 2], [3]]}, {"matrix": [[4]]}, schema)

    assert result == {"matrix": [[4]]}


# --- primitive merge lists (finalizers) -------------------------------------------------------


def test_finalizers_merge_as_a_set():
    live = {"metadata": {"finalizers": ["a", "b"]}}

    assert apply(live, {"metadata": {"finalizers": ["b", "c", "c"]}})["metadata"]["finalizers"] == [
        "a",
        "b",
        "c",
    ]


def test_a_new_finalizer_without_order_directive_comes_first():
    live = {"metadata": {"finalizers": ["a", "b"]}}

    assert apply(live, {"metadata": {"finalizers": ["c"]}})["metadata"]["finalizers"] == ["c", "a", "b"]


def test_delete_from_primitive_list_removes_values():
    live = {"metadata": {"finalizers": ["a", "b", "c", "b"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}}

    assert apply(live, patch) == {"metadata": {"finalizers": ["a", "c"]}}


def test_delete_from_primitive_list_on_a_missing_list_adds_nothing():
    live = {"metadata": {"name": "x"}}
    assert apply(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}) == live


def test_delete_from_primitive_list_applies_to_lists_without_merge_strategy_too():
    live = pod({"name": "app", "args": ["a", "b", "c"]})
    patch = {"spec": {"containers": [{"name": "app", "$deleteFromPrimitiveList/args": ["b"]}]}}

    assert apply(live, patch)["spec"]["containers"] == [{"name": "app", "args": ["a", "c"]}]


def test_kubectl_apply_finalizer_patch_adds_deletes_and_orders():
    live = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["a", "b", "d"],
            "$deleteFromPrimitiveList/finalizers": ["c"],
            "finalizers": ["d"],
        }
    }

    assert apply(live, patch)["metadata"]["finalizers"] == ["a", "b", "d"]


# --- $patch on lists and maps -------------------------------------------------------------------


def test_replace_directive_in_a_list_replaces_the_whole_list():
    live = pod({"name": "a", "image": "1"}, {"name": "b", "image": "2"})
    patch = {
        "spec": {
            "containers": [
                {"name": "c", "image": "3"},
                {"$patch": "replace"},
                {"name": "a", "$patch": "delete"},
                {"name": "b", "image": None},
            ]
        }
    }

    assert apply(live, patch)["spec"]["containers"] == [{"name": "c", "image": "3"}, {"name": "b"}]


def test_replace_directive_with_no_items_empties_the_list():
    live = pod({"name": "a"})
    assert apply(live, {"spec": {"containers": [{"$patch": "replace"}]}})["spec"]["containers"] == []


def test_replace_directive_in_a_map_replaces_the_map():
    live = pod({"name": "a"}, nodeSelector={"disk": "hdd", "zone": "z1"})

    result = apply(live, {"spec": {"nodeSelector": {"$patch": "replace", "disk": "ssd"}}})

    assert result["spec"]["nodeSelector"] == {"disk": "ssd"}


def test_replace_directive_at_the_top_replaces_the_object():
    assert apply({"a": 1, "b": {"c": 2}}, {"$patch": "replace", "d": 3}) == {"d": 3}


def test_delete_directive_in_a_map_leaves_it_empty():
    # kube-apiserver returns {} for the map (the Go struct then decodes to its zero value).
    live = live_deployment()

    result = apply(live, {"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}, DEPLOYMENT_SCHEMA)

    assert result["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {}}


# --- $retainKeys --------------------------------------------------------------------------------


def test_retain_keys_switches_deployment_strategy_to_recreate():
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}

    result = apply(live_deployment(), patch, DEPLOYMENT_SCHEMA)

    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_drops_unlisted_keys_even_without_null():
    live = pod({"name": "a"}, volumes=[{"name": "data", "emptyDir": {}, "secret": {"secretName": "s"}}])
    patch = {
        "spec": {
            "volumes": [{"name": "data", "$retainKeys": ["name", "secret"], "secret": {"secretName": "t"}}]
        }
    }

    assert apply(live, patch)["spec"]["volumes"] == [{"name": "data", "secret": {"secretName": "t"}}]


def test_retain_keys_must_list_every_key_the_patch_sets():
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}
    with pytest.raises(PatchError, match="retainKeys"):
        apply(live_deployment(), patch, DEPLOYMENT_SCHEMA)


# --- maps, nulls, unknown fields --------------------------------------------------------------


def test_labels_merge_and_null_removes_a_label():
    live = {"metadata": {"labels": {"app": "web", "tier": "front", "old": "x"}}}

    result = apply(live, {"metadata": {"labels": {"tier": "back", "old": None, "new": "y"}}})

    assert result == {"metadata": {"labels": {"app": "web", "tier": "back", "new": "y"}}}


def test_null_deletes_keys_and_is_ignored_for_absent_ones():
    live = pod({"name": "a"}, nodeSelector={"disk": "ssd"}, hostname="h")

    result = apply(live, {"spec": {"nodeSelector": None, "hostname": None, "subdomain": None}})

    assert result == pod({"name": "a"})


def test_nulls_inside_a_new_value_are_dropped():
    live = pod({"name": "a"})
    patch = {
        "spec": {
            "securityContext": {"runAsUser": 1000, "runAsGroup": None, "seLinuxOptions": {"level": None}}
        }
    }

    assert apply(live, patch)["spec"]["securityContext"] == {"runAsUser": 1000, "seLinuxOptions": {}}


def test_a_value_of_another_type_replaces():
    live = {"spec": {"x": "string", "y": [1], "z": {"a": 1}}}

    result = apply(live, {"spec": {"x": {"now": "object", "gone": None}, "y": {"k": 1}, "z": [1, 2]}})

    assert result == {"spec": {"x": {"now": "object"}, "y": {"k": 1}, "z": [1, 2]}}


def test_unknown_fields_merge_like_maps_and_their_lists_are_replaced():
    live = {"spec": {"custom": {"a": 1, "nested": {"b": 2}, "list": [{"name": "x", "v": 1}]}}}
    patch = {"spec": {"custom": {"nested": {"c": 3}, "list": [{"name": "y"}]}}}
    expected = {"spec": {"custom": {"a": 1, "nested": {"b": 2, "c": 3}, "list": [{"name": "y"}]}}}

    assert apply(live, patch, POD_SCHEMA) == expected
    assert apply(live, patch, UNKNOWN_SCHEMA) == expected


def test_directives_never_reach_the_result():
    live = pod({"name": "a", "image": "1"})
    patch = {
        "spec": {
            "initContainers": [
                {"name": "init", "image": "busybox", "env": [{"name": "X", "$patch": "delete"}]},
                {"name": "gone", "$patch": "delete"},
            ],
            "$setElementOrder/initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "resources": {"$retainKeys": ["limits"], "limits": {"cpu": "1"}}}],
            "affinity": {"nodeAffinity": {"$patch": "replace"}, "podAffinity": {"x": 1}},
            "overhead": {"$retainKeys": ["cpu"], "$deleteFromPrimitiveList/list": [1], "cpu": "1"},
            "tolerations": [{"$patch": "replace"}, {"key": "k"}],
        }
    }

    result = apply(live, patch)

    assert directive_keys(result) == []
    assert result["spec"]["initContainers"] == [{"name": "init", "image": "busybox", "env": []}]
    assert result["spec"]["containers"] == [
        {"name": "a", "image": "1", "resources": {"limits": {"cpu": "1"}}}
    ]
    assert result["spec"]["affinity"] == {"podAffinity": {"x": 1}}
    assert result["spec"]["overhead"] == {"cpu": "1"}
    assert result["spec"]["tolerations"] == [{"key": "k"}]


def test_field_with_replace_strategy_is_replaced_wholesale():
    schema = DictPatchSchema({"fields": {"raw": {"strategy": "replace"}}})

    result = apply({"raw": {"a": 1, "b": 2}}, {"raw": {"b": 3}}, schema)

    assert result == {"raw": {"b": 3}}


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "patch", "message"),
    [
        (
            pod({"name": "a"}),
            {"spec": {"containers": [{"image": "x"}]}},
            "map: map[image:x] does not contain declared merge key: name",
        ),
        (
            pod({"image": "x"}),
            {"spec": {"containers": [{"name": "a"}]}},
            "does not contain declared merge key: name",
        ),
        (
            pod({"name": "a"}),
            {"spec": {"containers": [{"$patch": "delete"}]}},
            "does not contain declared merge key",
        ),
        (
            pod({"name": "a"}),
            {"spec": {"containers": [{"name": "a", "$patch": "nuke"}]}},
            "unknown patch type: nuke",
        ),
        (
            pod({"name": "a"}),
            {"spec": {"containers": [{"$patch": "merge"}]}},
            "merging lists cannot yet be specified",
        ),
        (pod({"name": "a"}), {"spec": {"$patch": "frobnicate"}}, "unknown patch type: frobnicate"),
        (pod({"name": "a"}), {"spec": {"containers": ["a"]}}, "list element types are not identical"),
        (
            pod({"name": "a"}),
            {"spec": {"$setElementOrder/containers": {"name": "a"}}},
            "expected a []interface {}",
        ),
        (pod({"name": "a"}), {"spec": {"$setElementOrder/containers": [{"image": "a"}]}}, "merge key: name"),
        (
            pod({"name": "a"}),
            {"spec": {"$setElementOrder": [{"name": "a"}]}},
            "invalid patch format of setElementOrder",
        ),
        (
            pod({"name": "a"}),
            {"spec": {"$deleteFromPrimitiveListX/y": [1]}},
            "invalid patch format of primitive list",
        ),
        (
            pod({"name": "a"}),
            {"spec": {"$deleteFromPrimitiveList/containers": [{"name": "a"}]}},
            "only to lists of primitives",
        ),
        (pod({"name": "a"}), {"spec": {"$retainKeys": "containers"}}, "invalid patch format of retainKeys"),
        (
            {"metadata": {"finalizers": ["a"]}},
            {"metadata": {"finalizers": [1]}},
            "list element types are not identical",
        ),
    ],
    ids=[
        "patch-item-without-merge-key",
        "live-item-without-merge-key",
        "delete-without-merge-key",
        "unknown-list-directive",
        "merge-directive-in-list",
        "unknown-map-directive",
        "primitive-in-object-list",
        "order-not-a-list",
        "order-item-without-merge-key",
        "order-directive-without-field",
        "bad-delete-list-prefix",
        "delete-list-on-objects",
        "retain-keys-not-a-list",
        "mixed-primitive-types",
    ],
)
def test_invalid_patches_raise_patch_error(live, patch, message):
    before = copy.deepcopy(live)
    with pytest.raises(PatchError) as caught:
        apply(live, patch)
    assert message in caught.value.message
    assert isinstance(caught.value, ValueError)
    assert live == before


def test_merge_list_without_merge_key_metadata_is_an_error():
    schema = DictPatchSchema({"fields": {"items": {"strategy": "merge"}}})
    with pytest.raises(PatchError, match="cannot merge lists without merge key for items"):
        apply({"items": [{"a": 1}]}, {"items": [{"a": 2}]}, schema)


def test_unexpected_patch_strategy_is_an_error():
    schema = DictPatchSchema({"fields": {"items": {"strategy": "merge,replace"}}})
    with pytest.raises(PatchError, match="unexpected patch strategy"):
        apply({"items": [1]}, {"items": [2]}, schema)


@pytest.mark.parametrize(("live", "patch"), [([], {}), ({}, []), ({}, None), ("x", {"a": 1})])
def test_only_objects_can_be_patched(live, patch):
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(live, patch, POD_SCHEMA)


# --- never mutates ----------------------------------------------------------------------------


def test_inputs_are_not_mutated_and_result_shares_nothing_with_them():
    live = live_deployment()
    patch = {
        "metadata": {"labels": {"new": "1"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}, {"name": "log"}],
                    "containers": [{"name": "log", "image": "busybox", "env": [{"name": "A", "value": "1"}]}],
                }
            }
        },
    }
    live_before, patch_before = copy.deepcopy(live), copy.deepcopy(patch)

    result = apply(live, patch, DEPLOYMENT_SCHEMA)
    for container in result["spec"]["template"]["spec"]["containers"]:
        container["image"] = "mutated"
        container.setdefault("env", []).append({"name": "Z"})
    result["metadata"]["labels"]["app"] = "mutated"

    assert live == live_before
    assert patch == patch_before


# --- properties ---------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)
keys = st.sampled_from(["a", "b", "c", "spec", "name", "x"])
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=15,
)
json_objects = st.dictionaries(keys, json_values, max_size=4)
# Patches without directives whose lists hold only primitives: there, strategic merge with no
# metadata and JSON merge patch must agree.
plain_values = st.recursive(
    scalars,
    lambda inner: st.lists(scalars, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=15,
)
plain_patches = st.dictionaries(keys, plain_values, max_size=4)

names_ = st.sampled_from(["a", "b", "c"])
env_items = st.fixed_dictionaries(
    {"name": names_}, optional={"value": scalars, "$patch": st.sampled_from(["delete", "replace", "x"])}
)
container_values = {
    "image": scalars,
    "args": st.lists(st.text(max_size=2), max_size=2),
    "env": st.lists(env_items, max_size=3),
    "$setElementOrder/env": st.lists(st.fixed_dictionaries({"name": names_}), max_size=3),
    "$deleteFromPrimitiveList/args": st.lists(st.text(max_size=2), max_size=2),
    "$retainKeys": st.lists(st.sampled_from(["name", "image", "env", "args"]), max_size=3),
}
live_containers = st.lists(
    st.fixed_dictionaries(
        {"name": names_},
        optional={
            "image": scalars,
            "args": st.lists(st.text(max_size=2), max_size=2),
            "env": st.lists(st.fixed_dictionaries({"name": names_}, optional={"value": scalars}), max_size=3),
        },
    ),
    max_size=3,
)
patch_containers = st.lists(
    st.fixed_dictionaries(
        {"name": names_},
        optional={**container_values, "$patch": st.sampled_from(["delete", "replace", "merge"])},
    ),
    max_size=3,
)
live_pods = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.fixed_dictionaries(
            {},
            optional={"labels": st.dictionaries(names_, scalars), "finalizers": st.lists(names_, max_size=3)},
        ),
        "spec": st.fixed_dictionaries(
            {}, optional={"containers": live_containers, "tolerations": st.lists(json_objects, max_size=2)}
        ),
    },
)
pod_patches = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "labels": st.dictionaries(names_, scalars),
                "finalizers": st.lists(names_, max_size=3),
                "$deleteFromPrimitiveList/finalizers": st.lists(names_, max_size=2),
                "$setElementOrder/finalizers": st.lists(names_, max_size=3),
                "$patch": st.sampled_from(["replace", "delete"]),
            },
        ),
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "containers": patch_containers,
                "$setElementOrder/containers": st.lists(st.fixed_dictionaries({"name": names_}), max_size=3),
                "tolerations": st.lists(json_objects, max_size=2),
                "$retainKeys": st.lists(st.sampled_from(["containers", "tolerations"]), max_size=2),
            },
        ),
    },
)


@given(json_objects)
def test_empty_patch_is_identity(document):
    assert apply_strategic_merge_patch(document, {}, UNKNOWN_SCHEMA) == document
    assert apply_strategic_merge_patch(document, {}, POD_SCHEMA) == document


@given(json_objects, plain_patches)
def test_without_metadata_or_directives_it_is_json_merge_patch(document, patch):
    assert apply_strategic_merge_patch(document, patch, UNKNOWN_SCHEMA) == apply_merge_patch(document, patch)


@settings(max_examples=300)
@given(live_pods, pod_patches)
def test_never_mutates_its_inputs_and_leaves_no_directive(live, patch):
    live_before, patch_before = json.dumps(live, sort_keys=True), json.dumps(patch, sort_keys=True)
    try:
        result = apply_strategic_merge_patch(live, patch, POD_SCHEMA)
    except PatchError:
        result = None
    assert json.dumps(live, sort_keys=True) == live_before
    assert json.dumps(patch, sort_keys=True) == patch_before
    if result is not None:
        assert directive_keys(result) == []
