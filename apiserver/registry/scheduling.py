"""The Workload strategy: Kubernetes 1.35's alpha ``scheduling.k8s.io/v1alpha1`` Workload (KEP-4671).

A Workload declares the pod groups of one application and how each is scheduled: ``basic`` (pod by
pod, as usual) or ``gang`` (all or nothing: no pod of the group binds until ``minCount`` of them
fit). Pods join a group through ``spec.workloadRef`` and kube-scheduler's GangScheduling plugin
(:mod:`scheduler.plugins.gangscheduling`) holds them at Permit until the gang is complete, so a
malformed Workload would silently turn into pods that never schedule. The rules the OpenAPI schema
cannot express are checked here, as ``pkg/apis/scheduling/validation`` does: 1..8 pod groups with
unique DNS-label names, exactly one policy each, a positive ``minCount``, a well-formed
``controllerRef``; on update the pod groups never change and a set ``controllerRef`` stays.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.strategy import Obj, Strategy
from apiserver.registry.workload import json_value, semantic
from machinery import errors as api
from machinery.errors import FieldError
from machinery.validation import is_dns1123_label, is_dns1123_subdomain, is_valid_path_segment_name

WORKLOAD_MAX_POD_GROUPS = 8
POLICIES = ("basic", "gang")
ONE_POLICY = "exactly one of `basic`, `gang` is required"


@register("scheduling.k8s.io", "workloads")
class WorkloadStrategy(Strategy):
    """No status subresource in 1.35: the spec is all there is, and it is validated here."""

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = _as_dict(obj.get("spec"))
        errs: list[FieldError] = []
        if spec.get("controllerRef") is not None:
            errs += _controller_ref_errors(_as_dict(spec.get("controllerRef")), "spec.controllerRef")
        groups = spec.get("podGroups")
        groups = groups if isinstance(groups, list) else []
        if not groups:
            errs.append(api.required("spec.podGroups", "must have at least one item"))
        elif len(groups) > WORKLOAD_MAX_POD_GROUPS:
            errs.append(api.FieldError(api.TOO_MANY, "spec.podGroups",
                                       f"{len(groups)}: must have at most {WORKLOAD_MAX_POD_GROUPS} items"))
        else:
            seen: set[str] = set()
            for i, group in enumerate(groups):
                errs += _pod_group_errors(_as_dict(group), f"spec.podGroups[{i}]", seen)
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = _as_dict(new.get("spec")), _as_dict(old.get("spec"))
        if old_spec.get("controllerRef") is not None and \
                semantic(new_spec.get("controllerRef")) != semantic(old_spec.get("controllerRef")):
            errs.append(api.invalid_value("spec.controllerRef", json_value(new_spec.get("controllerRef")),
                                          "field is immutable"))
        if semantic(new_spec.get("podGroups")) != semantic(old_spec.get("podGroups")):
            errs.append(api.invalid_value("spec.podGroups", json_value(new_spec.get("podGroups")),
                                          "field is immutable"))
        return errs


def _as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _controller_ref_errors(ref: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    group = ref.get("apiGroup") or ""
    if group:
        errs += [api.invalid_value(f"{path}.apiGroup", group, m) for m in is_dns1123_subdomain(group)]
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            errs.append(api.required(f"{path}.{key}"))
        else:
            errs += [api.invalid_value(f"{path}.{key}", value, m) for m in is_valid_path_segment_name(value)]
    return errs


def _pod_group_errors(group: Obj, path: str, seen: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    name = group.get("name") or ""
    if not name:
        errs.append(api.required(f"{path}.name"))
    else:
        errs += [api.invalid_value(f"{path}.name", name, m) for m in is_dns1123_label(name)]
        if name in seen:
            errs.append(api.duplicate(f"{path}.name", name))
        seen.add(name)
    return errs + _policy_errors(_as_dict(group.get("policy")), f"{path}.policy")


def _policy_errors(policy: Obj, path: str) -> list[FieldError]:
    chosen = [key for key in POLICIES if policy.get(key) is not None]
    if not chosen:
        return [api.required(path, ONE_POLICY)]
    if len(chosen) > 1:
        rendered = "{" + ", ".join(f"`{key}`" for key in chosen) + "}"
        return [api.invalid_value(path, rendered, ONE_POLICY + ", but multiple fields are set")]
    if chosen == ["gang"]:
        min_count = _as_dict(policy["gang"]).get("minCount")
        if min_count is None:
            return [api.required(f"{path}.gang.minCount")]
        if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count <= 0:
            return [api.invalid_value(f"{path}.gang.minCount", min_count, "must be greater than zero")]
    return []
