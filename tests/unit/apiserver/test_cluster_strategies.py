"""Leases, EndpointSlices, PodDisruptionBudgets and PriorityClasses: defaults, rules, update checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver.registry.cluster import (
    EndpointSliceStrategy,
    LeaseStrategy,
    PodDisruptionBudgetStrategy,
    PriorityClassStrategy,
)
from tests.unit.apiserver.helpers import errors, strategy, update_errors


def created(s, obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    s.default(obj)
    s.prepare_for_create(obj)
    if s.tracks_generation:
        obj["metadata"]["generation"] = 1
    return obj


def test_strategies_are_registered() -> None:
    assert isinstance(strategy("coordination.k8s.io", "leases"), LeaseStrategy)
    assert isinstance(strategy("discovery.k8s.io", "endpointslices"), EndpointSliceStrategy)
    assert isinstance(strategy("policy", "poddisruptionbudgets"), PodDisruptionBudgetStrategy)
    assert isinstance(strategy("scheduling.k8s.io", "priorityclasses"), PriorityClassStrategy)


# --- Leases ----------------------------------------------------------------------------------------------


def lease(**spec: Any) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kube-scheduler", "namespace": "kube-system"}, "spec": spec}


def test_lease_accepts_free_text_holder_and_may_be_created_by_put() -> None:
    s = strategy("coordination.k8s.io", "leases")
    assert s.allow_create_on_update and not s.tracks_generation
    obj = created(s, lease(holderIdentity="node-1_5f3a Some Text!", leaseDurationSeconds=15, leaseTransitions=0))
    assert errors(s, obj) == []
    assert errors(s, created(s, lease())) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"leaseDurationSeconds": 0}, "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"),
    ({"leaseDurationSeconds": -3}, "spec.leaseDurationSeconds: Invalid value: -3: must be greater than 0"),
    ({"leaseTransitions": -1}, "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"),
    ({"strategy": "Newest"}, 'spec.strategy: Unsupported value: "Newest": supported values: "OldestEmulationVersion"'),
    ({"preferredHolder": "a"}, "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"),
])
def test_lease_rules(spec: dict, expected: str) -> None:
    s = strategy("coordination.k8s.io", "leases")
    assert errors(s, created(s, lease(**spec))) == [expected]
    old = created(s, lease())
    assert update_errors(s, lease(**spec), old) == [expected]


# --- EndpointSlices --------------------------------------------------------------------------------------


def slice_(address_type: str = "IPv4", addresses: list[str] | None = None, **extra: Any) -> dict:
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": address_type,
            "endpoints": [{"addresses": addresses or ["10.0.0.7"], "conditions": {"ready": True}}],
            "ports": [{"port": 80}]}
    body.update(extra)
    return body


def test_endpointslice_defaults_ports_and_keeps_the_service_label() -> None:
    s = strategy("discovery.k8s.io", "endpointslices")
    obj = created(s, slice_())
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    assert obj["metadata"]["labels"] == {"kubernetes.io/service-name": "web"}
    assert obj["metadata"]["generation"] == 1
    assert errors(s, obj) == []


@pytest.mark.parametrize(("obj", "expected"), [
    (slice_(address_type=""), "addressType: Required value"),
    (slice_(address_type="IPv5"), 'addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"'),
    (slice_(addresses=["10.0.0.300"]), 'endpoints[0].addresses[0]: Invalid value: "10.0.0.300": '
                                       "must be a valid IPv4 address"),
    (slice_(addresses=["fd00::1"]), 'endpoints[0].addresses[0]: Invalid value: "fd00::1": '
                                    "must be a valid IPv4 address"),
    (slice_("IPv6", ["10.0.0.1"]), 'endpoints[0].addresses[0]: Invalid value: "10.0.0.1": '
                                   "must be a valid IPv6 address"),
    (slice_(addresses=["127.0.0.1"]), 'endpoints[0].addresses[0]: Invalid value: "127.0.0.1": '
                                      "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
    (slice_(addresses=["0.0.0.0"]), 'endpoints[0].addresses[0]: Invalid value: "0.0.0.0": '
                                    "may not be unspecified (0.0.0.0)"),
    (slice_(addresses=["169.254.1.1"]), 'endpoints[0].addresses[0]: Invalid value: "169.254.1.1": '
                                        "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    (slice_(addresses=["224.0.0.5"]), 'endpoints[0].addresses[0]: Invalid value: "224.0.0.5": '
                                      "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
    (slice_("IPv6", ["fe80::1"]), 'endpoints[0].addresses[0]: Invalid value: "fe80::1": '
                                  "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    (slice_("FQDN", ["localhost"]), 'endpoints[0].addresses[0]: Invalid value: "localhost": '
                                    "should be a domain with at least two segments separated by dots"),
    (slice_(endpoints=[{"addresses": []}]), "endpoints[0].addresses: Required value: must contain at least 1 address"),
    (slice_(endpoints=[{"addresses": [f"10.0.1.{i}" for i in range(1, 102)]}]),
     "endpoints[0].addresses: Too many: 101: must have at most 100 items"),
    (slice_(endpoints=[{"addresses": ["10.0.0.1"], "nodeName": "Node_1"}]),
     'endpoints[0].nodeName: Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
     "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    (slice_(ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]),
     'ports[1].name: Duplicate value: "http"'),
    (slice_(ports=[{"name": "HTTP", "port": 80}]), 'ports[0].name: Invalid value: "HTTP": a lowercase RFC 1123 label'),
    (slice_(ports=[{"port": 80, "protocol": "ICMP"}]),
     'ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
])
def test_endpointslice_rules(obj: dict, expected: str) -> None:
    s = strategy("discovery.k8s.io", "endpointslices")
    errs = errors(s, created(s, obj))
    assert any(e.startswith(expected) for e in errs), errs


def test_endpointslice_accepts_each_address_type() -> None:
    s = strategy("discovery.k8s.io", "endpointslices")
    for obj in (slice_("IPv6", ["2001:db8::7"]), slice_("FQDN", ["db.example.com", "db.example.com."]),
                slice_(addresses=["10.0.0.1", "10.0.0.2"], ports=[{"name": "h", "port": 80, "appProtocol": "http"}])):
        assert errors(s, created(s, obj)) == []


def test_endpointslice_address_type_is_immutable_and_generation_counts_labels() -> None:
    s = strategy("discovery.k8s.io", "endpointslices")
    old = created(s, slice_())
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    new["endpoints"][0]["addresses"] = ["2001:db8::7"]
    assert update_errors(s, new, old) == ['addressType: Invalid value: "IPv6": field is immutable']
    relabeled = copy.deepcopy(old)
    relabeled["metadata"]["labels"]["extra"] = "x"
    assert s.spec_changed(relabeled, old)
    annotated = copy.deepcopy(old)
    annotated["metadata"]["annotations"] = {"a": "b"}
    assert not s.spec_changed(annotated, old)
    moved = copy.deepcopy(old)
    moved["endpoints"][0]["addresses"] = ["10.0.0.8"]
    assert s.spec_changed(moved, old)


# --- PodDisruptionBudgets --------------------------------------------------------------------------------


def pdb(**spec: Any) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def test_pdb_create_and_generation() -> None:
    s = strategy("policy", "poddisruptionbudgets")
    obj = created(s, pdb(minAvailable=1, selector={"matchLabels": {"app": "web"}}))
    assert obj["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    assert obj["metadata"]["generation"] == 1
    assert errors(s, obj) == []
    assert errors(s, created(s, pdb(maxUnavailable="50%", selector={}))) == []
    assert errors(s, created(s, pdb())) == []  # neither set is allowed in policy/v1
    new = copy.deepcopy(obj)
    new["spec"]["minAvailable"] = "30%"
    assert s.spec_changed(new, obj) and update_errors(s, new, obj) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"minAvailable": 1, "maxUnavailable": 1},
     'spec: Invalid value: {"maxUnavailable":1,"minAvailable":1}: minAvailable and maxUnavailable cannot be both set'),
    ({"minAvailable": -1}, "spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"),
    ({"maxUnavailable": "120%"},
     'spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"120%"}: '
     "must not be greater than 100%"),
    ({"minAvailable": "half"}, 'spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"half"}:'
                               " a valid percent string must be a numeric string followed by an ending '%'"),
    ({"selector": {"matchLabels": {"app": "no spaces"}}}, 'spec.selector.matchLabels: Invalid value: "no spaces"'),
    ({"unhealthyPodEvictionPolicy": "Never"},
     'spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"'),
])
def test_pdb_rules(spec: dict, expected: str) -> None:
    s = strategy("policy", "poddisruptionbudgets")
    errs = errors(s, created(s, pdb(**spec)))
    assert any(e.startswith(expected) for e in errs), errs


def test_pdb_status_rules() -> None:
    s = strategy("policy", "poddisruptionbudgets")
    old = created(s, pdb(minAvailable=1))
    good = copy.deepcopy(old)
    good["status"] = {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2,
                      "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                                      "lastTransitionTime": "2025-01-01T00:00:00Z", "message": ""}]}
    assert s.validate_status_update(good, old) == []
    bad = copy.deepcopy(old)
    bad["status"] = {"disruptionsAllowed": -1, "conditions": [
        {"type": "DisruptionAllowed", "status": "Yes", "reason": "1bad"},
        {"type": "DisruptionAllowed", "status": "True", "reason": "Ok", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    assert [str(e) for e in s.validate_status_update(bad, old)] == [
        'status.conditions[0].status: Unsupported value: "Yes": supported values: "False", "True", "Unknown"',
        "status.conditions[0].lastTransitionTime: Required value: must be set",
        'status.conditions[0].reason: Invalid value: "1bad": a condition reason must start with alphabetic '
        "character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an "
        "alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or "
        "'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
        'status.conditions[1].type: Duplicate value: "DisruptionAllowed"',
        "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0",
    ]


# --- PriorityClasses -------------------------------------------------------------------------------------


def priority_class(name: str = "high", value: int = 1000, **extra: Any) -> dict:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, **extra}


def test_priority_class_defaults_and_limits() -> None:
    s = strategy("scheduling.k8s.io", "priorityclasses")
    assert not s.namespaced
    obj = created(s, priority_class())
    assert obj["preemptionPolicy"] == "PreemptLowerPriority"
    assert errors(s, obj) == []
    assert errors(s, created(s, priority_class(value=1_000_000_000, preemptionPolicy="Never"))) == []
    assert errors(s, created(s, priority_class(value=-5))) == []
    assert errors(s, created(s, priority_class(value=1_000_000_001))) == [
        "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    assert errors(s, created(s, priority_class(preemptionPolicy="Always"))) == [
        'preemptionPolicy: Unsupported value: "Always": supported values: "PreemptLowerPriority", "Never"']


@pytest.mark.parametrize(("obj", "problem"), [
    (priority_class("system-special", 5), "system-special is not a known system priority class"),
    (priority_class("system-node-critical", 5), "value of system-node-critical PriorityClass must be 2000001000"),
    (priority_class("system-cluster-critical", 2_000_000_000, globalDefault=True),
     "globalDefault of system-cluster-critical PriorityClass must be false"),
])
def test_system_priority_class_names_are_reserved(obj: dict, problem: str) -> None:
    s = strategy("scheduling.k8s.io", "priorityclasses")
    assert errors(s, created(s, obj)) == [
        "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
        f"error: {problem}"]


def test_the_builtin_system_priority_classes_are_valid() -> None:
    s = strategy("scheduling.k8s.io", "priorityclasses")
    assert errors(s, created(s, priority_class("system-node-critical", 2_000_001_000))) == []
    assert errors(s, created(s, priority_class("system-cluster-critical", 2_000_000_000))) == []


def test_priority_class_value_and_policy_are_immutable() -> None:
    s = strategy("scheduling.k8s.io", "priorityclasses")
    old = created(s, priority_class())
    assert update_errors(s, {**old, "description": "now documented"}, old) == []
    assert update_errors(s, {**old, "value": 2000}, old) == ["value: Forbidden: may not be changed in an update."]
    assert update_errors(s, {**old, "preemptionPolicy": "Never"}, old) == [
        'preemptionPolicy: Invalid value: "Never": field is immutable']
