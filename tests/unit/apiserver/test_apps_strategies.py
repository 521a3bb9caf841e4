"""apps/v1 strategies: the defaults a user sees after create, the errors kubectl prints, the scale helpers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver.registry.apps import (
    ControllerRevisionStrategy,
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    StatefulSetStrategy,
)
from apiserver.registry.scale import apply_scale, scale_of
from machinery.errors import StatusError
from tests.unit.apiserver import helpers
from tests.unit.apiserver.helpers import errors, update_errors


def strategy(resource: str):
    return helpers.strategy("apps", resource)


def workload(kind: str, **spec: Any) -> dict:
    body = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
    }
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"},
            "spec": body}


def created(s, obj: dict) -> dict:
    """What the generic store does before validating a create (defaults, prepare, system fields)."""
    obj = copy.deepcopy(obj)
    s.default(obj)
    s.prepare_for_create(obj)
    obj["metadata"].update(uid="1b4f-uid", creationTimestamp="2025-01-01T00:00:00Z")
    if s.tracks_generation:
        obj["metadata"]["generation"] = 1
    return obj


def test_strategies_are_registered() -> None:
    assert isinstance(strategy("deployments"), DeploymentStrategy)
    assert isinstance(strategy("replicasets"), ReplicaSetStrategy)
    assert isinstance(strategy("statefulsets"), StatefulSetStrategy)
    assert isinstance(strategy("daemonsets"), DaemonSetStrategy)
    assert isinstance(strategy("controllerrevisions"), ControllerRevisionStrategy)


# --- golden defaulting -------------------------------------------------------------------------------


def test_deployment_defaults() -> None:
    obj = created(strategy("deployments"), workload("Deployment"))
    spec = obj["spec"]
    assert {k: v for k, v in spec.items() if k not in ("selector", "template")} == {
        "replicas": 1,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    assert spec["template"]["spec"]["restartPolicy"] == "Always"  # the pod template got pod defaults
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert obj["status"] == {}
    assert obj["metadata"]["generation"] == 1
    assert errors(strategy("deployments"), obj) == []


def test_deployment_explicit_values_are_kept() -> None:
    obj = created(strategy("deployments"), workload(
        "Deployment", replicas=0, strategy={"type": "Recreate"}, revisionHistoryLimit=0))
    assert obj["spec"]["replicas"] == 0
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    assert obj["spec"]["revisionHistoryLimit"] == 0
    partial = created(strategy("deployments"), workload(
        "Deployment", strategy={"rollingUpdate": {"maxSurge": 0}}))
    assert partial["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": "25%"}


def test_replicaset_defaults() -> None:
    obj = created(strategy("replicasets"), workload("ReplicaSet"))
    assert obj["spec"]["replicas"] == 1
    assert obj["status"] == {"replicas": 0}
    assert errors(strategy("replicasets"), obj) == []


def test_statefulset_defaults() -> None:
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}
    obj = created(strategy("statefulsets"), workload("StatefulSet", serviceName="web", volumeClaimTemplates=[claim]))
    spec = obj["spec"]
    assert {k: v for k, v in spec.items() if k not in ("selector", "template", "volumeClaimTemplates")} == {
        "serviceName": "web",
        "replicas": 1,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
    }
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert spec["volumeClaimTemplates"][0]["status"] == {"phase": "Pending"}
    assert obj["status"] == {"replicas": 0, "availableReplicas": 0}
    assert errors(strategy("statefulsets"), obj) == []


def test_statefulset_on_delete_gets_no_rolling_update() -> None:
    obj = created(strategy("statefulsets"), workload("StatefulSet", updateStrategy={"type": "OnDelete"}))
    assert obj["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_daemonset_defaults() -> None:
    obj = created(strategy("daemonsets"), workload("DaemonSet"))
    spec = obj["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert "replicas" not in spec
    assert obj["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                             "numberReady": 0}
    assert errors(strategy("daemonsets"), obj) == []


def test_defaulting_is_idempotent() -> None:
    for resource, kind in (("deployments", "Deployment"), ("statefulsets", "StatefulSet"), ("daemonsets", "DaemonSet")):
        s = strategy(resource)
        once = created(s, workload(kind))
        twice = copy.deepcopy(once)
        s.default(twice)
        assert twice == once


# --- validation rules --------------------------------------------------------------------------------

MISMATCH = ('spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
            "`selector` does not match template `labels`")


def _relabel(obj: dict) -> None:
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "other"}


def _set(path: str, value: Any):
    def mutate(obj: dict) -> None:
        target = obj
        keys = path.split(".")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        if value is _DELETE:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value
    return mutate


_DELETE = object()

DEPLOYMENT_CASES = [
    (_set("spec.replicas", -1), "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    (_set("spec.selector", _DELETE), "spec.selector: Required value"),
    (_set("spec.selector", {}), "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
                                "empty selector is invalid for deployment"),
    (_relabel, MISMATCH),
    (_set("spec.template.spec.restartPolicy", "Never"),
     'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'),
    (_set("spec.template.spec.activeDeadlineSeconds", 5),
     "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"),
    (_set("spec.strategy.rollingUpdate", {"maxUnavailable": 0, "maxSurge": "0%"}),
     'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: '
     "may not be 0 when `maxSurge` is 0"),
    (_set("spec.strategy.rollingUpdate", {"maxUnavailable": "110%", "maxSurge": 1}),
     'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, '
     'StrVal:"110%"}: must not be greater than 100%'),
    (_set("spec.strategy.rollingUpdate", {"maxUnavailable": 1, "maxSurge": "lots"}),
     'spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"lots"}: '
     "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
     "regex used for validation is '[0-9]+%')"),
    (_set("spec.strategy.rollingUpdate", {"maxUnavailable": -1, "maxSurge": 1}),
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"),
    (_set("spec.strategy", {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    (_set("spec.strategy", {"type": "BlueGreen"}),
     'spec.strategy: Unsupported value: {"type":"BlueGreen"}: supported values: "Recreate", "RollingUpdate"'),
    (_set("spec.minReadySeconds", -5), "spec.minReadySeconds: Invalid value: -5: must be greater than or equal to 0"),
    (_set("spec.revisionHistoryLimit", -1),
     "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"),
    (_set("spec.progressDeadlineSeconds", 10),  # minReadySeconds is 30 below
     "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"),
    (_set("spec.selector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
     "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
]


@pytest.mark.parametrize(("mutate", "expected"), DEPLOYMENT_CASES)
def test_deployment_validation(mutate, expected: str) -> None:
    s = strategy("deployments")
    obj = workload("Deployment", minReadySeconds=30) if "progressDeadline" in expected else workload("Deployment")
    obj = created(s, obj)
    mutate(obj)
    assert expected in errors(s, obj)


def test_missing_selector_also_reports_the_template_mismatch() -> None:
    s = strategy("deployments")
    obj = created(s, workload("Deployment"))
    del obj["spec"]["selector"]
    assert errors(s, obj) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]


def test_pod_template_is_validated_as_a_pod_spec() -> None:
    s = strategy("deployments")
    obj = created(s, workload("Deployment"))
    obj["spec"]["template"]["spec"]["containers"][0]["name"] = "Bad_Name"
    assert any(e.startswith("spec.template.spec.containers[0].name: Invalid value") for e in errors(s, obj))


def test_match_expressions_selector_matches_template() -> None:
    s = strategy("deployments")
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
    assert errors(s, created(s, workload("Deployment", selector=selector))) == []


def test_replicaset_validation_uses_the_replicaset_rules() -> None:
    s = strategy("replicasets")
    obj = created(s, workload("ReplicaSet", selector={}))
    assert ("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ) in errors(s, obj)
    obj = created(s, workload("ReplicaSet", replicas=-2))
    assert errors(s, obj) == ["spec.replicas: Invalid value: -2: must be greater than or equal to 0"]


DAEMONSET_CASES = [
    ({"maxUnavailable": 0, "maxSurge": 0},
     "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"),
    ({"maxUnavailable": 1, "maxSurge": 1},
     "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: "
     "may not be set when maxUnavailable is non-zero"),
    ({"maxUnavailable": "200%", "maxSurge": 0},
     'spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, '
     'StrVal:"200%"}: must not be greater than 100%'),
]


@pytest.mark.parametrize(("rolling", "expected"), DAEMONSET_CASES)
def test_daemonset_rolling_update_rules(rolling: dict, expected: str) -> None:
    s = strategy("daemonsets")
    obj = created(s, workload("DaemonSet", updateStrategy={"type": "RollingUpdate", "rollingUpdate": rolling}))
    assert expected in errors(s, obj)


def test_daemonset_surge_only_is_valid_and_on_delete_needs_nothing() -> None:
    s = strategy("daemonsets")
    surge = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}}
    assert errors(s, created(s, workload("DaemonSet", updateStrategy=surge))) == []
    assert errors(s, created(s, workload("DaemonSet", updateStrategy={"type": "OnDelete"}))) == []
    obj = created(s, workload("DaemonSet", updateStrategy={"type": "Sometimes"}))
    assert errors(s, obj) == [
        'spec.updateStrategy: Unsupported value: {"type":"Sometimes"}: supported values: "RollingUpdate", '
        '"OnDelete"']
    obj = created(s, workload("DaemonSet", selector={}))
    assert errors(s, obj)[0].endswith("empty selector is invalid for daemonset")


STATEFULSET_CASES = [
    (_set("spec.podManagementPolicy", "Random"),
     'spec.podManagementPolicy: Invalid value: "Random": must be \'OrderedReady\' or \'Parallel\''),
    (_set("spec.updateStrategy", {"type": "OnDelete", "rollingUpdate": {"partition": 1}}),
     'spec.updateStrategy.rollingUpdate: Invalid value: {"partition":1}: only allowed for updateStrategy '
     "'RollingUpdate'"),
    (_set("spec.updateStrategy", {"type": "Canary"}),
     'spec.updateStrategy: Invalid value: {"type":"Canary"}: must be \'RollingUpdate\' or \'OnDelete\''),
    (_set("spec.updateStrategy.rollingUpdate.partition", -1),
     "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"),
    (_set("spec.updateStrategy.rollingUpdate.maxUnavailable", 0),
     'spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, '
     'StrVal:""}: cannot be 0'),
    (_set("spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Keep"),
     'spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: "Keep": supported values: '
     '"Retain", "Delete"'),
    (_set("spec.ordinals", {"start": -1}),
     "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0"),
    (_set("spec.serviceName", "Web_Svc"),
     'spec.serviceName: Invalid value: "Web_Svc": a lowercase RFC 1123 label must consist of lower case '
     "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
     "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    (_set("spec.selector", {}), "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
                                "empty selector is invalid for statefulset"),
    (_relabel, MISMATCH),
    (_set("spec.template.spec.restartPolicy", "OnFailure"),
     'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'),
]


@pytest.mark.parametrize(("mutate", "expected"), STATEFULSET_CASES)
def test_statefulset_validation(mutate, expected: str) -> None:
    s = strategy("statefulsets")
    obj = created(s, workload("StatefulSet", serviceName="web"))
    mutate(obj)
    assert expected in errors(s, obj)


def test_statefulset_service_name_is_optional_and_names_are_dns_labels() -> None:
    s = strategy("statefulsets")
    assert errors(s, created(s, workload("StatefulSet"))) == []
    assert s.name_rule == "label"


def test_statefulset_claim_mounts_are_not_dangling() -> None:
    s = strategy("statefulsets")
    obj = workload("StatefulSet", volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    assert errors(s, created(s, obj)) == []
    obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = "nope"
    assert any("volumeMounts[0].name" in e for e in errors(s, created(s, obj)))


# --- updates: immutability and generation -----------------------------------------------------------


@pytest.mark.parametrize(("resource", "kind"), [
    ("deployments", "Deployment"), ("replicasets", "ReplicaSet"), ("daemonsets", "DaemonSet")])
def test_selector_is_immutable(resource: str, kind: str) -> None:
    s = strategy(resource)
    old = created(s, workload(kind))
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "front"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    assert update_errors(s, new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"front"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    same = copy.deepcopy(old)
    same["spec"]["selector"] = {"matchLabels": {"app": "web"}, "matchExpressions": []}  # empty == absent
    assert update_errors(s, same, old) == []


def test_statefulset_only_some_fields_may_change() -> None:
    s = strategy("statefulsets")
    old = created(s, workload("StatefulSet", serviceName="web"))
    ok = copy.deepcopy(old)
    ok["spec"].update(replicas=5, minReadySeconds=3, revisionHistoryLimit=2, ordinals={"start": 1},
                      updateStrategy={"type": "OnDelete"})
    ok["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert update_errors(s, ok, old) == []
    for change in ({"serviceName": "other"}, {"podManagementPolicy": "Parallel"},
                   {"selector": {"matchLabels": {"app": "web", "x": "y"}}}):
        bad = copy.deepcopy(old)
        bad["spec"].update(change)
        assert ("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden") in update_errors(s, bad, old)


def test_generation_counts_spec_changes_only() -> None:
    s = strategy("replicasets")
    old = created(s, workload("ReplicaSet"))
    relabeled = copy.deepcopy(old)
    relabeled["metadata"]["labels"] = {"x": "y"}
    relabeled["metadata"]["annotations"] = {"a": "b"}
    assert not s.spec_changed(relabeled, old)
    status_only = copy.deepcopy(old)
    status_only["status"] = {"replicas": 3}
    assert not s.spec_changed(status_only, old)
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 3
    assert s.spec_changed(scaled, old)


def test_deployment_annotation_changes_count_like_spec_changes() -> None:
    s = strategy("deployments")
    old = created(s, workload("Deployment"))
    annotated = copy.deepcopy(old)
    annotated["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2"}
    assert s.spec_changed(annotated, old)
    labeled = copy.deepcopy(old)
    labeled["metadata"]["labels"] = {"x": "y"}
    assert not s.spec_changed(labeled, old)


def test_update_keeps_status_from_the_stored_object() -> None:
    s = strategy("deployments")
    old = created(s, workload("Deployment"))
    old["status"] = {"replicas": 1}
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 99}
    s.prepare_for_update(new, old)
    assert new["status"] == {"replicas": 1}


# --- status updates ---------------------------------------------------------------------------------


def _status_errors(s, old: dict, status: dict) -> list[str]:
    new = copy.deepcopy(old)
    new["status"] = status
    return [str(e) for e in s.validate_status_update(new, old)]


def test_deployment_status_rules() -> None:
    s = strategy("deployments")
    old = created(s, workload("Deployment"))
    old["status"] = {"collisionCount": 2}
    assert _status_errors(s, old, {"replicas": 2, "readyReplicas": 2, "availableReplicas": 1,
                                   "collisionCount": 2}) == []
    assert _status_errors(s, old, {"replicas": -1, "collisionCount": 2}) == [  # absent counters are 0 > -1
        "status.replicas: Invalid value: -1: must be greater than or equal to 0",
        "status.updatedReplicas: Invalid value: 0: cannot be greater than status.replicas",
        "status.readyReplicas: Invalid value: 0: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 0: cannot be greater than status.replicas"]
    assert _status_errors(s, old, {"replicas": 1, "readyReplicas": 2, "availableReplicas": 2, "collisionCount": 2}) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas"]
    assert _status_errors(s, old, {"replicas": 2, "readyReplicas": 1, "availableReplicas": 2, "collisionCount": 2}) == [
        "status.availableReplicas: Invalid value: 2: cannot be greater than readyReplicas"]
    assert _status_errors(s, old, {"collisionCount": 1}) == [
        "status.collisionCount: Invalid value: 1: cannot be decremented"]


def test_workload_status_rules() -> None:
    rs = strategy("replicasets")
    old = created(rs, workload("ReplicaSet"))
    assert _status_errors(rs, old, {"replicas": 1, "fullyLabeledReplicas": 2}) == [
        "status.fullyLabeledReplicas: Invalid value: 2: cannot be greater than status.replicas"]
    sts = strategy("statefulsets")
    old = created(sts, workload("StatefulSet"))
    assert _status_errors(sts, old, {"replicas": 2, "readyReplicas": 1, "availableReplicas": 2}) == [
        "status.availableReplicas: Invalid value: 2: cannot be greater than status.readyReplicas"]
    ds = strategy("daemonsets")
    old = created(ds, workload("DaemonSet"))
    assert _status_errors(ds, old, {"numberReady": -1}) == [
        "status.numberReady: Invalid value: -1: must be greater than or equal to 0"]


def test_replicaset_field_selector() -> None:
    s = strategy("replicasets")
    obj = created(s, workload("ReplicaSet"))
    assert "status.replicas" in s.selectable_fields
    assert s.field_values(obj)["status.replicas"] == "0"
    obj["status"] = {"replicas": 3}
    assert s.field_values(obj) == {"metadata.name": "web", "metadata.namespace": "default", "status.replicas": "3"}


# --- ControllerRevisions -----------------------------------------------------------------------------


def test_controller_revision_rules() -> None:
    s = strategy("controllerrevisions")
    revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": "web-1", "namespace": "default"}, "data": {"spec": {"x": 1}}, "revision": 1}
    assert errors(s, revision) == []
    assert errors(s, {**revision, "revision": -1}) == [
        "revision: Invalid value: -1: must be greater than or equal to 0"]
    assert errors(s, {k: v for k, v in revision.items() if k != "data"}) == ["data: Required value: data is mandatory"]
    assert update_errors(s, {**revision, "revision": 2}, revision) == []  # revision may be bumped
    assert update_errors(s, {**revision, "data": {"spec": {"x": 2}}}, revision) == [
        'data: Invalid value: {"spec":{"x":2}}: field is immutable']


# --- the scale subresource ---------------------------------------------------------------------------


def _stored(kind: str = "Deployment") -> dict:
    obj = created(strategy("deployments"), workload(kind, replicas=2))
    obj["metadata"]["resourceVersion"] = "42"
    obj["status"] = {"replicas": 2}
    return obj


def test_scale_of_a_deployment() -> None:
    obj = _stored()
    before = copy.deepcopy(obj)
    assert scale_of(obj) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "1b4f-uid", "resourceVersion": "42",
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "selector": "app=web"},
    }
    assert obj == before


def test_scale_of_renders_expressions_and_omits_zero_replicas() -> None:
    obj = _stored()
    obj["spec"]["replicas"] = 0
    obj["spec"]["selector"] = {"matchLabels": {"app": "web"},
                               "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}
    del obj["status"]
    scale = scale_of(obj)
    assert scale["spec"] == {}
    assert scale["status"] == {"replicas": 0, "selector": "app=web,tier in (a,b)"}
    assert scale_of(obj, "custom=1")["status"]["selector"] == "custom=1"


def test_apply_scale_sets_replicas_without_mutating() -> None:
    obj = _stored()
    before = copy.deepcopy(obj)
    updated = apply_scale(obj, {"spec": {"replicas": 5}})
    assert updated["spec"]["replicas"] == 5 and obj == before
    assert apply_scale(obj, {"metadata": {"resourceVersion": "42"}, "spec": {"replicas": 1}})["spec"]["replicas"] == 1
    assert apply_scale(obj, {"spec": {}})["spec"]["replicas"] == 0  # omitempty int32: absent means 0


def test_apply_scale_rejects_negative_replicas() -> None:
    with pytest.raises(StatusError) as info:
        apply_scale(_stored(), {"metadata": {"name": "web"}, "spec": {"replicas": -1}})
    assert info.value.code == 422
    assert info.value.message == ('Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
                                  "must be greater than or equal to 0")
    assert info.value.details["kind"] == "Scale" and info.value.details["group"] == "autoscaling"


def test_apply_scale_with_a_stale_resource_version_conflicts() -> None:
    for kind, resource in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
        with pytest.raises(StatusError) as info:
            apply_scale(_stored(kind), {"metadata": {"resourceVersion": "41"}, "spec": {"replicas": 3}})
        assert info.value.code == 409
        assert info.value.message == (f'Operation cannot be fulfilled on {resource}.apps "web": the object has been '
                                      "modified; please apply your changes to the latest version and try again")
