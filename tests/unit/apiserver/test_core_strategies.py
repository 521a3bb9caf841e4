"""Core/v1 strategies other than Pods and Services: namespaces, nodes, config kinds, events, storage.

Pods are covered in test_core_strategies_pods.py, Services/Endpoints in test_core_strategies_services.py.
"""

from __future__ import annotations

import base64
import copy

import pytest

from apiserver.registry.builtin import strategy_for
from apiserver.resources import BUILTIN_RESOURCES


def strategy(resource: str, group: str = ""):
    info = next(r for r in BUILTIN_RESOURCES if r.resource == resource and r.group == group)
    return strategy_for(info)


def created(s, obj: dict) -> dict:
    s.default(obj)
    s.prepare_for_create(obj)
    return obj


def texts(errs) -> list[str]:
    return [str(e) for e in errs]


def update(s, old: dict, change) -> tuple[dict, list[str]]:
    new = copy.deepcopy(old)
    change(new)
    s.default(new)
    s.prepare_for_update(new, old)
    return new, texts(s.validate_update(new, old))


# --- namespaces ---------------------------------------------------------------------------------

NAMESPACES = strategy("namespaces")


def test_namespace_create():
    ns = created(NAMESPACES, {"metadata": {"name": "team-a"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert NAMESPACES.name_rule == "label"
    assert NAMESPACES.field_values(ns) == {"metadata.name": "team-a", "status.phase": "Active"}


def test_namespace_spec_finalizers_change_only_through_finalize():
    ns = created(NAMESPACES, {"metadata": {"name": "a"}})
    new, errs = update(NAMESPACES, ns, lambda o: o["spec"].update(finalizers=[]))
    assert errs == [] and new["spec"]["finalizers"] == ["kubernetes"]
    finalized = copy.deepcopy(ns)
    finalized["spec"]["finalizers"] = []
    finalized["metadata"]["labels"]["sneaky"] = "x"
    NAMESPACES.prepare_for_finalize(finalized, ns)
    assert "finalizers" not in finalized["spec"] and "sneaky" not in finalized["metadata"]["labels"]
    assert texts(NAMESPACES.validate_finalize({"spec": {"finalizers": ["custom"]}}, ns)) == [
        'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully '
        "qualified"]


def test_namespace_deletion_hooks():
    ns = created(NAMESPACES, {"metadata": {"name": "a"}})
    assert NAMESPACES.blocks_deletion(ns)
    NAMESPACES.on_delete_mark(ns)
    assert ns["status"]["phase"] == "Terminating"
    ns["spec"]["finalizers"] = []
    assert not NAMESPACES.blocks_deletion(ns)


def test_namespace_status_phase_follows_deletion():
    ns = created(NAMESPACES, {"metadata": {"name": "a"}})
    new = copy.deepcopy(ns)
    new["status"]["phase"] = "Terminating"
    assert texts(NAMESPACES.validate_status_update(new, ns)) == [
        "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"]


# --- nodes --------------------------------------------------------------------------------------

NODES = strategy("nodes")


def node(**spec) -> dict:
    return {"metadata": {"name": "n1"}, "spec": spec,
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}


def test_node_keeps_registered_status_and_defaults():
    obj = created(NODES, node(podCIDR="10.244.1.0/24"))
    assert obj["status"]["allocatable"] == obj["status"]["capacity"]
    assert obj["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    assert NODES.validate(obj) == []
    assert NODES.field_values(obj) == {"metadata.name": "n1", "spec.unschedulable": "false"}


def test_node_taints():
    errs = texts(NODES.validate(node(taints=[
        {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"},
        {"key": "b", "effect": "Sometimes"}, {"key": "-c", "effect": "NoExecute"}, {"key": "d"},
    ])))
    assert errs[0] == 'spec.taints[1]: Duplicate value: {"key":"a","effect":"NoSchedule"}: taints must be unique ' \
                      "by key and effect pair"
    assert errs[1] == 'spec.taints[2].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", ' \
                      '"PreferNoSchedule", "NoExecute"'
    assert errs[2].startswith('spec.taints[3].key: Invalid value: "-c": name part must consist of')
    assert errs[3] == "spec.taints[4].effect: Required value"


def test_node_pod_cidr_is_immutable_once_set():
    old = created(NODES, node(podCIDR="10.244.1.0/24"))
    _, errs = update(NODES, old, lambda o: o["spec"].update(podCIDR="10.244.2.0/24", podCIDRs=["10.244.2.0/24"]))
    assert errs == ['spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid']
    unset = created(NODES, node())
    _, errs = update(NODES, unset, lambda o: o["spec"].update(podCIDR="10.244.2.0/24"))
    assert errs == []


# --- configmaps and secrets ---------------------------------------------------------------------

CONFIGMAPS = strategy("configmaps")
SECRETS = strategy("secrets")


def test_configmap_keys_and_size():
    errs = texts(CONFIGMAPS.validate({"data": {"a b": "x", "ok": "1"}, "binaryData": {"ok": "MQ=="}}))
    assert errs == [
        'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, \'-\', '
        "'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
        "'[-._a-zA-Z0-9]+')",
        'data[ok]: Invalid value: "ok": duplicate of key present in binaryData',
    ]
    assert texts(CONFIGMAPS.validate({"data": {"big": "x" * (1024 * 1024 + 1)}})) == [
        "Too long: may not be more than 1048576 bytes"]


def test_immutable_configmap():
    old = {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}
    _, errs = update(CONFIGMAPS, old, lambda o: o["data"].update(a="2"))
    assert errs == ["data: Forbidden: field is immutable when `immutable` is set"]
    _, errs = update(CONFIGMAPS, old, lambda o: o.pop("immutable"))
    assert errs == ["immutable: Forbidden: field is immutable when `immutable` is set"]
    _, errs = update(CONFIGMAPS, old, lambda o: o["metadata"].update(labels={"x": "y"}))
    assert errs == []


def test_secret_defaults_and_string_data():
    secret = created(SECRETS, {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"
    assert SECRETS.field_values(secret)["type"] == "Opaque"


def test_secret_type_rules():
    tls = created(SECRETS, {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})
    assert texts(SECRETS.validate(tls)) == ["data[tls.key]: Required value"]
    token = created(SECRETS, {"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"})
    assert texts(SECRETS.validate(token)) == [
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"]


def test_secret_type_and_immutable_data():
    old = created(SECRETS, {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "immutable": True})
    _, errs = update(SECRETS, old, lambda o: o.update(type="kubernetes.io/basic-auth"))
    assert errs[0] == 'type: Invalid value: "kubernetes.io/basic-auth": field is immutable'
    _, errs = update(SECRETS, old, lambda o: o["data"].update(a="eQ=="))
    assert errs == ["data: Forbidden: field is immutable when `immutable` is set"]
    _, errs = update(SECRETS, old, lambda o: o.update(stringData={"b": "new"}))
    assert errs == ["data: Forbidden: field is immutable when `immutable` is set"]


# --- limit ranges and quotas --------------------------------------------------------------------

LIMITRANGES = strategy("limitranges")
QUOTAS = strategy("resourcequotas")


def test_limit_range_defaults_and_order():
    obj = created(LIMITRANGES, {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"},
                                                      "min": {"memory": "10Mi"}}]}})
    item = obj["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "10Mi"}
    assert LIMITRANGES.validate(obj) == []
    bad = created(LIMITRANGES, {"spec": {"limits": [{"type": "Container", "min": {"cpu": "2"},
                                                      "max": {"cpu": "1"}}]}})
    assert texts(LIMITRANGES.validate(bad))[0] == \
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1'


def test_resource_quota_hard():
    errs = texts(QUOTAS.validate({"spec": {"hard": {"pods": "10", "requests.cpu": "-1", "bogus": "1",
                                                    "count/deployments.apps": "2"}}}))
    assert errs == [
        'spec.hard[requests.cpu]: Invalid value: "-1": must be greater than or equal to 0',
        'spec.hard[bogus]: Invalid value: "bogus": must be a standard resource for quota',
    ]


# --- events ---------------------------------------------------------------------------------------

EVENTS = strategy("events")
EVENTS_V1 = strategy("events", "events.k8s.io")


def core_event(**fields) -> dict:
    event = {"metadata": {"name": "web.17a3f0c2b1", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1",
                                "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{app}"},
             "reason": "Pulled", "message": "ok", "type": "Normal", "source": {"component": "kubelet"}}
    event.update(fields)
    return event


def test_core_event_validation_is_lenient():
    assert EVENTS.validate(core_event()) == []
    assert EVENTS.allow_create_on_update
    mismatched = core_event()
    mismatched["involvedObject"]["namespace"] = "other"
    assert texts(EVENTS.validate(mismatched)) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace']


def test_new_style_core_event_needs_reporting_fields():
    errs = texts(EVENTS.validate(core_event(eventTime="2025-01-01T00:00:00.000000Z", reason="")))
    assert "reportingComponent: Required value" in errs
    assert "reportingInstance: Required value" in errs
    assert "action: Required value" in errs
    assert "reason: Required value" in errs


def test_core_event_field_selectors():
    fields = EVENTS.field_values(core_event())
    assert fields == {
        "metadata.name": "web.17a3f0c2b1", "metadata.namespace": "default",
        "involvedObject.kind": "Pod", "involvedObject.namespace": "default", "involvedObject.name": "web",
        "involvedObject.uid": "u1", "involvedObject.apiVersion": "v1", "involvedObject.resourceVersion": "42",
        "involvedObject.fieldPath": "spec.containers{app}", "reason": "Pulled", "reportingComponent": "",
        "source": "kubelet", "type": "Normal",
    }
    assert set(EVENTS.selectable_fields) == set(fields) - {"metadata.name", "metadata.namespace"}


def v1_event(**fields) -> dict:
    event = {"metadata": {"name": "web.1", "namespace": "default"},
             "regarding": {"kind": "Pod", "namespace": "default", "name": "web"},
             "eventTime": "2025-01-01T00:00:00.000000Z", "reason": "Scheduled", "action": "Binding",
             "type": "Normal", "reportingController": "default-scheduler", "reportingInstance": "sched-1"}
    event.update(fields)
    return event


def test_events_v1_create_rules():
    assert EVENTS_V1.validate(v1_event()) == []
    errs = texts(EVENTS_V1.validate(v1_event(eventTime=None, type="Error", reportingController="",
                                             deprecatedCount=3)))
    assert "eventTime: Required value" in errs
    assert 'type: Invalid value: "": has invalid value: Error' in errs
    assert "reportingController: Required value" not in errs  # no eventTime: legacy rules do not apply
    assert 'count: Invalid value: "": needs to be unset' in errs


def test_events_v1_update_is_immutable_except_series():
    old = v1_event()
    _, errs = update(EVENTS_V1, old, lambda o: o.update(series={"count": 2,
                                                                "lastObservedTime": "2025-01-01T00:01:00.000000Z"}))
    assert errs == []
    _, errs = update(EVENTS_V1, old, lambda o: o.update(reason="Other"))
    assert errs == ['reason: Invalid value: "Other": field is immutable']


def test_events_v1_field_selectors():
    fields = EVENTS_V1.field_values(v1_event())
    assert fields["regarding.name"] == "web" and fields["reportingController"] == "default-scheduler"
    assert fields["reason"] == "Scheduled" and fields["type"] == "Normal"


# --- persistent volumes and claims ----------------------------------------------------------------

PVS = strategy("persistentvolumes")
PVCS = strategy("persistentvolumeclaims")


def pv(**spec) -> dict:
    body = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}
    body.update(spec)
    return {"metadata": {"name": "pv1"}, "spec": body}


def test_persistent_volume_defaults_and_status():
    obj = created(PVS, pv())
    assert obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert obj["spec"]["volumeMode"] == "Filesystem"
    assert obj["status"]["phase"] == "Pending" and obj["status"]["lastPhaseTransitionTime"]
    assert PVS.validate(obj) == []


def test_persistent_volume_validation():
    errs = texts(PVS.validate(created(PVS, pv(capacity={}, accessModes=["ReadWriteSometimes"], hostPath=None))))
    assert errs == [
        'spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
        '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
        "spec.capacity: Required value",
        "spec: Required value: must specify a volume type",
    ]
    assert texts(PVS.validate(created(PVS, pv(capacity={"storage": "0"})))) == [
        'spec.capacity[storage]: Invalid value: "0": must be greater than zero']


def test_persistent_volume_source_is_immutable():
    old = created(PVS, pv())
    _, errs = update(PVS, old, lambda o: o["spec"].update(hostPath={"path": "/other"}))
    assert errs[0].startswith("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable "
                              "after creation")


def claim(**spec) -> dict:
    body = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    body.update(spec)
    return {"metadata": {"name": "data", "namespace": "default"}, "spec": body}


def test_claim_defaults_and_validation():
    obj = created(PVCS, claim())
    assert obj["spec"]["volumeMode"] == "Filesystem" and obj["status"] == {"phase": "Pending"}
    assert PVCS.validate(obj) == []
    assert texts(PVCS.validate(created(PVCS, claim(accessModes=[], resources={})))) == [
        "spec.accessModes: Required value: at least 1 access mode is required",
        "spec.resources[storage]: Required value",
    ]


@pytest.mark.parametrize(("phase", "size", "expected"), [
    ("Bound", "2Gi", []),
    ("Pending", "2Gi", ["spec: Forbidden: spec is immutable after creation except resources.requests and "
                        "volumeAttributesClassName for bound claims"]),
])
def test_claim_resize(phase, size, expected):
    old = created(PVCS, claim())
    old["status"] = {"phase": phase, "capacity": {"storage": "1Gi"}}
    _, errs = update(PVCS, old, lambda o: o["spec"]["resources"]["requests"].update(storage=size))
    assert [e.split("\n")[0] for e in errs] == expected


def test_claim_volume_name_set_once_and_shrink_limited():
    old = created(PVCS, claim())
    _, errs = update(PVCS, old, lambda o: o["spec"].update(volumeName="pv1"))
    assert errs == []
    old["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    _, errs = update(PVCS, old, lambda o: o["spec"]["resources"]["requests"].update(storage="512Mi"))
    assert errs == ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
