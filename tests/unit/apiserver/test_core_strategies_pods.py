"""Pod strategy: defaults and admission, QoS, validation messages, update rules, binding, deletion.

Expected texts are Kubernetes v1.35's (pkg/apis/core/validation and the pod registry).
"""

from __future__ import annotations

import copy

import pytest

from apiserver.registry.builtin import strategy_for
from apiserver.registry.core.containers import image_tag
from apiserver.registry.core.pods import bind
from apiserver.registry.core.podspec import (
    UPDATE_FORBIDDEN,
    default_pod_spec,
    pod_spec_update_errors,
    validate_pod_spec,
    validate_pod_template,
)
from apiserver.resources import BUILTIN_RESOURCES
from machinery.errors import StatusError


def strategy(resource: str, group: str = ""):
    info = next(r for r in BUILTIN_RESOURCES if r.resource == resource and r.group == group)
    return strategy_for(info)


PODS = strategy("pods")


def pod(**spec) -> dict:
    body = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": body}


def created(obj: dict) -> dict:
    PODS.default(obj)
    PODS.prepare_for_create(obj)
    return obj


def errors(obj: dict) -> list[str]:
    PODS.default(obj)
    return [str(e) for e in PODS.validate(obj)]


# --- defaults and admission ---------------------------------------------------------------------


def test_minimal_pod_is_defaulted_as_kubernetes_does():
    obj = created({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                   "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    assert obj["spec"] == {
        "containers": [{
            "name": "app", "image": "nginx", "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "resources": {},
        }],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
        ],
    }
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert PODS.validate(obj) == []


def test_defaulting_is_idempotent():
    obj = created(pod())
    again = copy.deepcopy(obj)
    PODS.default(again)
    assert again == obj


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
    ("localhost:5000/nginx", "Always"), ("localhost:5000/nginx:v1", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"), ("nginx:latest@sha256:" + "a" * 64, "Always"),
])
def test_image_pull_policy_follows_the_tag(image, policy):
    obj = created(pod(containers=[{"name": "c", "image": image}]))
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == policy
    assert image_tag(image) in ("latest", "") or policy == "IfNotPresent"


def test_container_parts_are_defaulted():
    probe = {"httpGet": {"port": 80}}
    obj = created(pod(containers=[{
        "name": "c", "image": "x:1", "ports": [{"containerPort": 80}],
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "livenessProbe": probe, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
    }], volumes=[{"name": "cm", "configMap": {"name": "cfg"}}, {"name": "scratch"},
                 {"name": "host", "hostPath": {"path": "/tmp"}}]))
    ctr = obj["spec"]["containers"][0]
    assert ctr["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert ctr["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert ctr["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert ctr["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert obj["spec"]["volumes"] == [
        {"name": "cm", "configMap": {"name": "cfg", "defaultMode": 420}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": "/tmp", "type": ""}},
    ]


def test_template_defaults_leave_out_pod_only_fields():
    spec = {"containers": [{"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1"}}}]}
    default_pod_spec(spec)
    assert "enableServiceLinks" not in spec and "serviceAccountName" not in spec and "tolerations" not in spec
    assert spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}


def test_existing_tolerations_and_service_account_are_kept():
    obj = created(pod(serviceAccountName="builder",
                      tolerations=[{"operator": "Exists"}]))
    assert obj["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert obj["spec"]["serviceAccountName"] == obj["spec"]["serviceAccount"] == "builder"


def test_system_priority_class_sets_priority_and_a_mismatch_is_forbidden():
    obj = created(pod(priorityClassName="system-node-critical"))
    assert obj["spec"]["priority"] == 2000001000
    with pytest.raises(StatusError) as err:
        created(pod(priority=7))
    assert err.value.code == 403
    assert "the integer value of priority (7) must not be provided in pod spec" in err.value.message


def test_host_network_ports_get_host_ports():
    obj = created(pod(hostNetwork=True, containers=[{"name": "c", "image": "x:1", "ports": [{"containerPort": 53}]}]))
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 53
    assert PODS.validate(obj) == []


# --- QoS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resources", "qos"), [
    ([{}], "BestEffort"),
    ([{"requests": {"cpu": "0"}}], "BestEffort"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1"}}], "Burstable"),
    ([{"requests": {"memory": "10Mi"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {"limits": {"cpu": "2", "memory": "2Gi"}}], "Guaranteed"),
])
def test_qos_class(resources, qos):
    containers = [{"name": f"c{i}", "image": "x:1", "resources": r} for i, r in enumerate(resources)]
    assert created(pod(containers=containers))["status"]["qosClass"] == qos


def test_init_containers_count_for_qos():
    guaranteed = {"limits": {"cpu": "1", "memory": "1Gi"}}
    obj = created(pod(containers=[{"name": "a", "image": "x:1", "resources": guaranteed}],
                      initContainers=[{"name": "i", "image": "x:1"}]))
    assert obj["status"]["qosClass"] == "Burstable"


def test_pod_level_resources_decide_qos():
    obj = created(pod(resources={"limits": {"cpu": "1", "memory": "1Gi"}}))
    assert obj["status"]["qosClass"] == "Guaranteed"


# --- validation ---------------------------------------------------------------------------------


def test_at_least_one_container():
    assert errors(pod(containers=[])) == ["spec.containers: Required value"]


def test_container_names():
    errs = errors(pod(containers=[{"name": "a", "image": "x:1"}, {"name": "a", "image": "x:1"}],
                      initContainers=[{"name": "a", "image": "x:1"}, {"name": "Bad_Name", "image": "x:1"}]))
    assert errs[0] == 'spec.containers[1].name: Duplicate value: "a"'
    assert errs[1] == 'spec.initContainers[0].name: Duplicate value: "a"'
    assert errs[2].startswith('spec.initContainers[1].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label')


def test_image_required_and_trimmed():
    assert errors(pod(containers=[{"name": "a"}])) == ["spec.containers[0].image: Required value"]
    assert errors(pod(containers=[{"name": "a", "image": " x"}])) == [
        'spec.containers[0].image: Invalid value: " x": must not have leading or trailing whitespace']


def test_ports():
    errs = errors(pod(containers=[{"name": "a", "image": "x:1", "ports": [
        {"containerPort": 70000, "protocol": "TCP"},
        {"containerPort": 80, "protocol": "HTTP", "name": "web"},
        {"containerPort": 81, "name": "web"},
        {"containerPort": 82, "name": "Web_1"},
    ]}]))
    assert errs[0] == "spec.containers[0].ports[0].containerPort: Invalid value: 70000: " \
                      "must be between 1 and 65535, inclusive"
    assert errs[1] == 'spec.containers[0].ports[1].protocol: Unsupported value: "HTTP": ' \
                      'supported values: "SCTP", "TCP", "UDP"'
    assert errs[2] == 'spec.containers[0].ports[2].name: Duplicate value: "web"'
    assert errs[3].startswith('spec.containers[0].ports[3].name: Invalid value: "Web_1": must contain only')


def test_env():
    errs = errors(pod(containers=[{"name": "a", "image": "x:1", "env": [
        {"name": "A=B"},
        {"name": "B", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}},
        {"name": "D", "valueFrom": {}},
        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s"}}},
    ]}]))
    assert errs == [
        'spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist '
        "only of printable ASCII characters other than '='",
        'spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when `value` is not empty',
        'spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.bogus": supported '
        'values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
        '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"',
        'spec.containers[0].env[3].valueFrom: Invalid value: "": must specify one of: `fieldRef`, '
        "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        "spec.containers[0].env[4].valueFrom.secretKeyRef.key: Required value",
    ]


def test_volumes_and_mounts():
    errs = errors(pod(volumes=[{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
                               {"name": "Two", "emptyDir": {}, "hostPath": {"path": "/x"}}],
                      containers=[{"name": "a", "image": "x:1", "volumeMounts": [
                          {"name": "data", "mountPath": "/d"}, {"name": "x", "mountPath": "/d"},
                          {"name": "data", "mountPath": "/e", "subPath": "../up"}]}]))
    assert errs[0] == 'spec.volumes[1].name: Duplicate value: "data"'
    assert errs[1] == "spec.volumes[2].hostPath: Forbidden: may not specify more than 1 volume type"
    assert errs[2].startswith('spec.volumes[2].name: Invalid value: "Two"')
    assert errs[3:] == [
        'spec.containers[0].volumeMounts[1].name: Not found: "x"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/d": must be unique',
        "spec.containers[0].volumeMounts.subPath: Invalid value: \"../up\": must not contain '..'",
    ]


def test_volume_sources():
    errs = errors(pod(volumes=[{"name": "s", "secret": {"defaultMode": 1000}}, {"name": "c", "configMap": {}},
                               {"name": "p", "persistentVolumeClaim": {}}]))
    assert errs == [
        "spec.volumes[0].secret.secretName: Required value",
        "spec.volumes[0].secret.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), "
        "both inclusive",
        "spec.volumes[1].configMap.name: Required value",
        "spec.volumes[2].persistentVolumeClaim.claimName: Required value",
    ]


def test_resources():
    errs = errors(pod(containers=[{"name": "a", "image": "x:1", "resources": {
        "limits": {"cpu": "1", "memory": "-1"}, "requests": {"cpu": "2", "example.com/gpu": "1", "pods": "1"}}}]))
    assert sorted(errs) == sorted([  # resource lists are maps: Kubernetes reports them in no fixed order
        'spec.containers[0].resources.limits[memory]: Invalid value: "-1": must be greater than or equal to 0',
        "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        # requests default to limits, so the negative memory shows up twice, as in Kubernetes
        'spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater than or equal to 0',
        "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
        'spec.containers[0].resources.requests[pods]: Invalid value: "pods": must be a standard resource for '
        "containers",
    ])


def test_bad_quantity_is_reported_at_its_field():
    errs = errors(pod(containers=[{"name": "a", "image": "x:1", "resources": {"limits": {"cpu": "lots"}}}]))
    assert errs[0].startswith('spec.containers[0].resources.limits[cpu]: Invalid value: "lots": quantities must')


def test_policies_and_names():
    errs = errors(pod(restartPolicy="Sometimes", dnsPolicy="Google", hostname="Host", subdomain="a.b",
                      nodeSelector={"disk": "ss d"}, terminationGracePeriodSeconds=-1, activeDeadlineSeconds=0))
    assert 'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"' \
        in errs
    assert 'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", ' \
           '"ClusterFirst", "Default", "None"' in errs
    assert any(e.startswith('spec.nodeSelector: Invalid value: "ss d"') for e in errs)
    assert any(e.startswith('spec.hostname: Invalid value: "Host"') for e in errs)
    assert 'spec.subdomain: Invalid value: "a.b": must not contain dots' in errs
    assert "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0" in errs
    assert "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive" in errs


def test_dns_none_needs_config():
    assert errors(pod(dnsPolicy="None")) == ["spec.dnsConfig: Required value: must provide `dnsConfig` when "
                                             "`dnsPolicy` is None"]


def test_tolerations():
    errs = errors(pod(tolerations=[
        {"operator": "Equal", "value": "x"},
        {"key": "k", "operator": "Exists", "value": "v"},
        {"key": "k", "operator": "Maybe"},
        {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
        {"key": "k", "effect": "Sometimes"},
    ]))
    assert errs == [
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
        'which means "match all values and all keys"',
        "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
        'spec.tolerations[2].operator: Unsupported value: "Maybe": supported values: "Equal", "Exists"',
        "spec.tolerations[3].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
        "`tolerationSeconds` is set",
        'spec.tolerations[4].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"',
    ]


def test_probes():
    errs = errors(pod(containers=[{"name": "a", "image": "x:1",
                                   "livenessProbe": {"successThreshold": 2, "exec": {"command": ["true"]}},
                                   "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
                                   "startupProbe": {}}]))
    assert errs == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].startupProbe: Required value: must specify a handler type",
    ]


def test_init_containers_restart_policy_and_sidecars():
    errs = errors(pod(initContainers=[
        {"name": "once", "image": "x:1", "restartPolicy": "Never"},
        {"name": "plain", "image": "x:1", "readinessProbe": {"exec": {"command": ["true"]}}},
        {"name": "sidecar", "image": "x:1", "restartPolicy": "Always",
         "readinessProbe": {"exec": {"command": ["true"]}}},
    ], containers=[{"name": "a", "image": "x:1", "restartPolicy": "Always"}]))
    assert errs == [
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        'spec.initContainers[0].restartPolicy: Unsupported value: "Never": supported values: "Always"',
        "spec.initContainers[1].readinessProbe: Forbidden: may not be set for init containers without "
        "restartPolicy=Always",
    ]


def test_ephemeral_containers_cannot_be_set_on_create():
    assert "spec.ephemeralContainers: Forbidden: cannot be set on create" in errors(
        pod(ephemeralContainers=[{"name": "debug", "image": "busybox"}]))


def test_pod_template_paths():
    template = {"metadata": {"labels": {"app": "-bad"}}, "spec": {"containers": [{"name": "a"}]}}
    errs = [str(e) for e in validate_pod_template(template, "spec.template")]
    assert errs[0].startswith('spec.template.labels: Invalid value: "-bad"')
    assert errs[1] == "spec.template.spec.containers[0].image: Required value"
    assert [str(e) for e in validate_pod_spec(None, "spec.template.spec")] == ["spec.template.spec: Required value"]


# --- update -------------------------------------------------------------------------------------


def update_errors(old: dict, change) -> list[str]:
    new = copy.deepcopy(old)
    change(new["spec"])
    PODS.default(new)
    PODS.prepare_for_update(new, old)
    return [str(e) for e in PODS.validate_update(new, old)]


def test_image_change_is_allowed():
    old = created(pod())
    assert update_errors(old, lambda s: s["containers"][0].update(image="nginx:1.28")) == []


def test_other_changes_are_forbidden_with_kubernetes_message():
    old = created(pod())
    errs = update_errors(old, lambda s: s["containers"][0].update(ports=[{"containerPort": 80}]))
    assert len(errs) == 1
    assert errs[0].startswith("spec: Forbidden: pod updates may not change fields other than "
                              "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                              "`spec.tolerations` (only additions to existing tolerations),"
                              "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
                              "negative)\n")
    assert "containers[0].ports" in errs[0]
    assert UPDATE_FORBIDDEN in errs[0]


def test_node_name_is_immutable_through_update():
    old = created(pod(nodeName="n1"))
    errs = update_errors(old, lambda s: s.update(nodeName="n2"))
    assert errs and errs[0].startswith("spec: Forbidden: pod updates may not change fields other than")


def test_adding_or_removing_containers():
    old = created(pod())
    errs = update_errors(old, lambda s: s["containers"].append({"name": "b", "image": "x:1"}))
    assert errs == ["spec.containers: Forbidden: pod updates may not add or remove containers"]


def test_active_deadline_may_be_set_or_lowered():
    old = created(pod())
    assert update_errors(old, lambda s: s.update(activeDeadlineSeconds=100)) == []
    old["spec"]["activeDeadlineSeconds"] = 100
    assert update_errors(old, lambda s: s.update(activeDeadlineSeconds=50)) == []
    assert update_errors(old, lambda s: s.update(activeDeadlineSeconds=200)) == [
        "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]
    assert update_errors(old, lambda s: s.pop("activeDeadlineSeconds")) == [
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"]


def test_tolerations_only_additions():
    old = created(pod())
    assert update_errors(old, lambda s: s["tolerations"].append({"key": "k", "operator": "Exists"})) == []
    assert update_errors(old, lambda s: s["tolerations"][0].update(tolerationSeconds=10)) == []
    assert update_errors(old, lambda s: s["tolerations"].pop(0)) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]


def test_scheduling_gates_only_removed():
    old = created(pod(schedulingGates=[{"name": "example.com/wait"}]))
    assert update_errors(old, lambda s: s.pop("schedulingGates")) == []
    assert update_errors(old, lambda s: s["schedulingGates"].append({"name": "more"})) == [
        "spec.schedulingGates[1]: Forbidden: only deletion is allowed, but found new scheduling gate 'more'"]


def test_update_keeps_status_and_bumps_generation_only_on_spec_change():
    old = created(pod())
    new = copy.deepcopy(old)
    new.pop("status")
    PODS.prepare_for_update(new, old)
    assert new["status"] == old["status"]
    assert PODS.tracks_generation
    assert not PODS.spec_changed(new, old)


def test_empty_values_compare_equal_on_update():
    old = created(pod())
    assert pod_spec_update_errors({**old["spec"], "hostNetwork": False, "volumes": []}, old["spec"], "spec") == []


# --- binding ------------------------------------------------------------------------------------


def binding(node: str = "n1", **target) -> dict:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"kind": "Node", "name": node, **target}}


def test_bind_sets_node_and_condition_without_touching_input():
    obj = created(pod())
    before = copy.deepcopy(obj)
    bound = bind(obj, binding(), now="2025-01-01T00:00:00Z")
    assert obj == before
    assert bound["spec"]["nodeName"] == "n1"
    assert bound["status"]["conditions"] == [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                              "lastTransitionTime": "2025-01-01T00:00:00Z"}]


def test_bind_replaces_unschedulable_condition():
    obj = created(pod())
    obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    bound = bind(obj, binding(), now="t")
    assert bound["status"]["conditions"] == [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                              "lastTransitionTime": "t"}]


def test_bind_conflicts():
    assigned = created(pod(nodeName="n0"))
    with pytest.raises(StatusError) as err:
        bind(assigned, binding())
    assert err.value.code == 409
    assert err.value.message == 'Operation cannot be fulfilled on pods/binding "p": pod p is already assigned ' \
                                'to node "n0"'
    deleting = created(pod())
    deleting["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    with pytest.raises(StatusError) as err:
        bind(deleting, binding())
    assert err.value.code == 409 and "is being deleted" in err.value.message
    gated = created(pod(schedulingGates=[{"name": "wait"}]))
    with pytest.raises(StatusError) as err:
        bind(gated, binding())
    assert err.value.code == 409 and "non-empty .spec.schedulingGates" in err.value.message


def test_bind_rejects_non_node_targets():
    with pytest.raises(StatusError) as err:
        bind(created(pod()), binding(kind="Pod"))
    assert err.value.code == 400
    assert err.value.message == 'target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>"'
    with pytest.raises(StatusError) as err:
        bind(created(pod()), binding(node=""))
    assert err.value.code == 400 and err.value.message == "target.name: Required value"
    assert bind(created(pod()), {"target": {"name": "n1"}})["spec"]["nodeName"] == "n1"


def test_bind_missing_pod_is_not_found_and_binding_skips_update_rules():
    with pytest.raises(StatusError) as err:
        bind(None, binding())
    assert err.value.code == 404 and err.value.message == 'pods "p" not found'
    old = created(pod())
    new = bind(old, binding(), now="t")
    PODS.prepare_for_binding(new, old)
    assert new["spec"]["nodeName"] == "n1" and PODS.validate_binding(new, old) == []
    assert pod_spec_update_errors(new["spec"], old["spec"], "spec")  # a plain update may not do this


# --- deletion, status, field selectors ----------------------------------------------------------


def test_deletion_grace_period():
    scheduled = created(pod(nodeName="n1", terminationGracePeriodSeconds=45))
    assert PODS.deletion_grace_period(scheduled, None) == 45
    assert PODS.deletion_grace_period(scheduled, 5) == 5
    assert PODS.deletion_grace_period(scheduled, 0) == 0
    assert PODS.deletion_grace_period(created(pod()), 30) == 0
    scheduled["status"]["phase"] = "Succeeded"
    assert PODS.deletion_grace_period(scheduled, None) == 0


def test_status_update_validation():
    old = created(pod(nodeName="n1"))
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Runing", "podIPs": [{"ip": "10.0.0.300"}],
                     "conditions": [{"type": "Ready", "status": "Yes"}, {"type": "bad type", "status": "True"}]}
    errs = [str(e) for e in PODS.validate_status_update(new, old)]
    assert errs[0] == 'status.phase: Unsupported value: "Runing": supported values: "Pending", "Running", ' \
                      '"Succeeded", "Failed", "Unknown"'
    assert errs[1] == 'status.conditions[0].status: Unsupported value: "Yes": supported values: "True", ' \
                      '"False", "Unknown"'
    assert errs[2].startswith('status.conditions[1].Type: Invalid value: "bad type"')
    assert errs[3] == 'status.podIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, ' \
                      "(e.g. 10.9.8.7 or 2001:db8::ffff)"
    new["status"] = {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}
    assert [str(e) for e in PODS.validate_status_update(new, old)] == [
        "status.podIPs: Invalid value: [{10.0.0.1} {10.0.0.2}]: may specify no more than one IP for each IP family"]
    new["status"] = {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}
    assert PODS.validate_status_update(new, old) == []


def test_terminal_phase_is_final():
    old = created(pod())
    old["status"]["phase"] = "Failed"
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Running"
    assert [str(e) for e in PODS.validate_status_update(new, old)] == [
        'status.phase: Forbidden: cannot transition from terminal phase "Failed" to "Running"']


def test_status_update_keeps_pod_ip_pair_in_step():
    new = created(pod())
    new["status"]["podIP"] = "10.1.0.5"
    PODS.prepare_for_status_update(new, new)
    assert new["status"]["podIPs"] == [{"ip": "10.1.0.5"}]


def test_field_selectors():
    obj = created(pod(nodeName="n1"))
    obj["status"]["podIPs"] = [{"ip": "10.1.0.5"}]
    fields = PODS.field_values(obj)
    assert fields == {
        "metadata.name": "p", "metadata.namespace": "default", "spec.nodeName": "n1",
        "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default", "spec.hostNetwork": "false", "status.phase": "Pending",
        "status.podIP": "10.1.0.5", "status.podIPs": "10.1.0.5", "status.nominatedNodeName": "",
    }
