"""pods/resize: which fields the subresource keeps, and ValidatePodResize's messages (Kubernetes v1.35).

Each test runs the strategy hooks the way the generic store does for a subresource: the request's
pod goes through ``prepare_for_resize(new, stored)`` and then ``validate_resize(new, stored)``.
"""

from __future__ import annotations

import copy

import pytest

from apiserver.registry.builtin import strategy_for
from apiserver.registry.core.podspec import UPDATE_FORBIDDEN
from apiserver.resources import BUILTIN_RESOURCES
from machinery.qos import pod_qos_class

PODS = strategy_for(next(r for r in BUILTIN_RESOURCES if r.resource == "pods" and r.group == ""))


def resources(cpu_req=None, cpu_lim=None, mem_req=None, mem_lim=None, **extra_requests) -> dict:
    req = {k: v for k, v in (("cpu", cpu_req), ("memory", mem_req)) if v is not None}
    lim = {k: v for k, v in (("cpu", cpu_lim), ("memory", mem_lim)) if v is not None}
    req.update(extra_requests)
    out = {}
    if req:
        out["requests"] = req
    if lim:
        out["limits"] = lim
    return out


def stored_pod(*containers: dict, init: tuple[dict, ...] = (), **status) -> dict:
    """A pod as the store holds it: defaulted, created, with a running container reporting resources."""
    spec: dict = {"containers": [{"name": c["name"], "image": "busybox", "resources": c.get("resources", {}),
                                  **{k: v for k, v in c.items() if k not in ("name", "resources")}}
                                 for c in containers]}
    if init:
        spec["initContainers"] = [{"image": "busybox", **c} for c in init]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "default", "uid": "u1", "generation": 1,
                        "resourceVersion": "5", "labels": {"app": "x"}},
           "spec": spec}
    PODS.default(pod)
    PODS.prepare_for_create(pod)
    pod["spec"]["nodeName"] = "n1"
    pod["status"].update({"phase": "Running", "containerStatuses": [
        {"name": c["name"], "state": {"running": {}}, "resources": c.get("resources", {})} for c in containers]})
    pod["status"].update(status)
    return pod


def resize(stored: dict, mutate) -> tuple[dict, list[str]]:
    """Apply ``mutate`` to a copy of ``stored`` (the request body), then run the resize hooks."""
    new = copy.deepcopy(stored)
    mutate(new)
    meta = new["metadata"]
    PODS.prepare_for_resize(new, stored)
    assert new["metadata"] is meta  # the generic store goes on writing system fields into this dict
    return new, [str(e) for e in PODS.validate_resize(new, stored)]


def set_resources(index: int, value: dict, kind: str = "containers"):
    def mutate(pod):
        pod["spec"][kind][index]["resources"] = value
    return mutate


BURSTABLE = resources("100m", "200m", "32Mi", "64Mi")


# --- what the subresource keeps ---------------------------------------------------------------


def test_only_resources_are_taken_from_the_request():
    stored = stored_pod({"name": "c", "resources": BURSTABLE})

    def mutate(pod):
        pod["spec"]["containers"][0]["resources"] = resources("150m", "300m", "32Mi", "128Mi")
        pod["spec"]["containers"][0]["image"] = "nginx"
        pod["spec"]["activeDeadlineSeconds"] = 5
        pod["metadata"]["labels"] = {"app": "changed"}
        pod["status"]["phase"] = "Failed"

    new, errs = resize(stored, mutate)
    assert errs == []
    assert new["spec"]["containers"][0]["resources"] == resources("150m", "300m", "32Mi", "128Mi")
    assert new["spec"]["containers"][0]["image"] == "busybox"
    assert "activeDeadlineSeconds" not in new["spec"]
    assert new["metadata"]["labels"] == {"app": "x"}
    assert new["status"] == stored["status"]


def test_requests_default_to_new_limits():
    stored = stored_pod({"name": "c", "resources": resources("100m", None, "32Mi", None)})
    new, errs = resize(stored, set_resources(0, {"requests": {"cpu": "100m", "memory": "32Mi"},
                                                 "limits": {"cpu": "500m"}}))
    assert errs == []
    assert new["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "32Mi"}


def test_sidecar_resources_may_change():
    sidecar = {"name": "s", "restartPolicy": "Always", "resources": resources("100m", None, "16Mi", None)}
    stored = stored_pod({"name": "c", "resources": BURSTABLE}, init=(sidecar,))
    new, errs = resize(stored, set_resources(0, resources("200m", None, "16Mi", None), "initContainers"))
    assert errs == []
    assert new["spec"]["initContainers"][0]["resources"]["requests"]["cpu"] == "200m"


# --- validation messages ----------------------------------------------------------------------


def test_best_effort_pod_cannot_gain_requests():
    stored = stored_pod({"name": "c1"})
    _, errs = resize(stored, set_resources(0, resources(mem_req="32Mi")))
    assert errs == ['spec: Invalid value: "BestEffort": Pod QOS Class may not change as a result of resizing']


def test_guaranteed_pod_must_keep_requests_equal_to_limits():
    stored = stored_pod({"name": "c", "resources": resources("100m", "100m", "64Mi", "64Mi")})
    assert pod_qos_class(stored) == "Guaranteed"
    _, errs = resize(stored, set_resources(0, resources("100m", "100m", "32Mi", "64Mi")))
    assert errs == ['spec: Invalid value: "Guaranteed": Pod QOS Class may not change as a result of resizing']
    _, errs = resize(stored, set_resources(0, resources("200m", "200m", "128Mi", "128Mi")))
    assert errs == []


def test_burstable_pod_cannot_become_guaranteed():
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    _, errs = resize(stored, set_resources(0, resources("200m", "200m", "64Mi", "64Mi")))
    assert errs == ['spec: Invalid value: "Burstable": Pod QOS Class may not change as a result of resizing']


@pytest.mark.parametrize(("after", "expected"), [
    (resources("100m", None, "32Mi", None), "spec.containers[0].resources.limits: Forbidden: "
                                            "resource limits cannot be removed"),
    (resources(None, None, "32Mi", "64Mi"), "spec.containers[0].resources.requests: Forbidden: "
                                            "resource requests cannot be removed"),
])
def test_requests_and_limits_cannot_be_removed(after, expected):
    stored = stored_pod({"name": "c", "resources": resources("100m", None, "32Mi", "64Mi")})
    _, errs = resize(stored, set_resources(0, after))
    assert errs == [expected]


def test_a_removed_request_comes_back_from_its_limit():
    """Defaulting (requests from limits) runs on the resize body too, as in Kubernetes."""
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    new, errs = resize(stored, set_resources(0, resources(None, "200m", "32Mi", "64Mi")))
    assert errs == []
    assert new["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "200m", "memory": "32Mi"}


def test_memory_limit_may_decrease():
    """Since 1.34 a memory limit decrease is allowed (the kubelet refuses it only below usage)."""
    stored = stored_pod({"name": "c", "resources": resources("100m", "200m", "32Mi", "128Mi")})
    _, errs = resize(stored, set_resources(0, resources("100m", "200m", "32Mi", "64Mi")))
    assert errs == []


def test_only_cpu_and_memory_are_mutable():
    stored = stored_pod({"name": "c", "resources": resources("100m", None, "32Mi", None, **{"ephemeral-storage": "1"})})
    _, errs = resize(stored, set_resources(0, resources("100m", None, "32Mi", None, **{"ephemeral-storage": "3"})))
    assert errs == ["spec: Forbidden: only cpu and memory resources are mutable"]


def test_resize_policy_is_immutable():
    stored = stored_pod({"name": "c", "resources": BURSTABLE,
                         "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]})

    def mutate(pod):
        pod["spec"]["containers"][0]["resizePolicy"] = [{"resourceName": "cpu", "restartPolicy": "RestartContainer"}]

    _, errs = resize(stored, mutate)
    assert errs == ["spec: Forbidden: only cpu and memory resources are mutable"]


def test_non_sidecar_init_containers_are_immutable():
    init = {"name": "i", "resources": resources("100m", None, "32Mi", None)}
    stored = stored_pod({"name": "c"}, init=(init,))
    _, errs = resize(stored, set_resources(0, resources("200m", None, "64Mi", None), "initContainers"))
    assert "spec: Forbidden: resources for non-sidecar init containers are immutable" in errs


def test_sidecar_other_resources_are_immutable():
    sidecar = {"name": "s", "restartPolicy": "Always",
               "resources": resources("100m", None, "16Mi", None, **{"ephemeral-storage": "1"})}
    stored = stored_pod({"name": "c", "resources": BURSTABLE}, init=(sidecar,))
    _, errs = resize(stored, set_resources(
        0, resources("100m", None, "16Mi", None, **{"ephemeral-storage": "2"}), "initContainers"))
    assert errs == ["spec: Forbidden: only cpu and memory resources for sidecar containers are mutable"]


def test_containers_may_not_be_reordered_or_renamed():
    stored = stored_pod({"name": "c1", "resources": BURSTABLE}, {"name": "c2", "resources": BURSTABLE})

    def reorder(pod):
        pod["spec"]["containers"].reverse()

    _, errs = resize(stored, reorder)
    assert errs == ["spec.containers[0].name: Forbidden: containers may not be renamed or reordered on resize",
                    "spec.containers[1].name: Forbidden: containers may not be renamed or reordered on resize"]

    def drop(pod):
        pod["spec"]["containers"].pop()

    _, errs = resize(stored, drop)
    assert errs == ["spec.containers: Forbidden: containers may not be added or removed on resize"]


def test_requests_above_limits_are_invalid():
    stored = stored_pod({"name": "c", "resources": resources("100m", "300m", "32Mi", "64Mi")})
    _, errs = resize(stored, set_resources(0, resources("500m", "300m", "32Mi", "64Mi")))
    assert 'spec.containers[0].resources.requests: Invalid value: "500m": must be less than or equal to ' \
           'cpu limit of 300m' in errs


@pytest.mark.parametrize(("tweak", "expected"), [
    (lambda p: p["metadata"].setdefault("annotations", {}).update({"kubernetes.io/config.mirror": "x"}),
     "Forbidden: static pods cannot be resized"),
    (lambda p: p["spec"].update({"os": {"name": "windows"}}), "Forbidden: windows pods cannot be resized"),
    (lambda p: p["status"].update({"phase": "Succeeded"}), 'Forbidden: pods in phase "Succeeded" cannot be resized'),
])
def test_pods_that_cannot_be_resized_at_all(tweak, expected):
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    tweak(stored)
    _, errs = resize(stored, set_resources(0, resources("150m", "300m", "32Mi", "64Mi")))
    assert errs == [expected]


def test_pod_level_resources_cannot_be_resized():
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    stored["spec"]["resources"] = {"requests": {"cpu": "1"}}
    _, errs = resize(stored, set_resources(0, resources("150m", "300m", "32Mi", "64Mi")))
    assert errs == ["Forbidden: pods with pod-level resources cannot be resized"]


def test_running_container_without_reported_resources_means_no_resize_support():
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    del stored["status"]["containerStatuses"][0]["resources"]
    _, errs = resize(stored, set_resources(0, resources("150m", "300m", "32Mi", "64Mi")))
    assert errs == ["spec: Forbidden: Pod running on node without support for resize"]


def test_unscheduled_pod_may_be_resized():
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    stored["spec"].pop("nodeName")
    stored["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    _, errs = resize(stored, set_resources(0, resources("150m", "300m", "32Mi", "64Mi")))
    assert errs == []


def test_equivalent_quantities_are_not_a_change_of_other_resources():
    before = resources("100m", None, "32Mi", None, **{"ephemeral-storage": "1Gi"})
    stored = stored_pod({"name": "c", "resources": before})
    _, errs = resize(stored, set_resources(0, resources("200m", None, "32Mi", None,
                                                        **{"ephemeral-storage": "1024Mi"})))
    assert errs == []


# --- the normal update path still refuses resource changes ------------------------------------


def test_plain_update_cannot_change_resources():
    stored = stored_pod({"name": "c", "resources": BURSTABLE})
    new = copy.deepcopy(stored)
    new["spec"]["containers"][0]["resources"] = resources("150m", "300m", "32Mi", "64Mi")
    PODS.default(new)
    PODS.prepare_for_update(new, stored)
    errs = [str(e) for e in PODS.validate_update(new, stored)]
    assert len(errs) == 1
    assert errs[0].startswith("spec: Forbidden: " + UPDATE_FORBIDDEN)
    assert "resources" in errs[0]
