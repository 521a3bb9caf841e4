"""The Node strategy: cluster-scoped nodes registered by kubelets, tainted by controllers and users.

Unlike most resources a Node keeps the status it is created with (the kubelet registers itself
with capacity and addresses in one create). Defaults mirror v1 conversion and SetDefaults_NodeStatus
(``podCIDR``/``podCIDRs`` kept in step, ``allocatable`` defaults to ``capacity``). Validation:
taints (qualified keys, label values, known effects, unique key+effect), pod CIDRs (valid, one per
family, immutable once set), providerID (immutable once set), resource quantities.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core.common import (
    as_dict,
    as_list,
    as_str,
    dicts,
    label_value,
    qualified_name,
    shown,
    spec_of,
    status_of,
)
from apiserver.registry.core.placement import validate_taint_effect
from apiserver.registry.core.resourcelist import validate_quantity_value
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError, forbidden, invalid_value
from machinery.validation import is_valid_cidr, parse_ip_sloppy

CIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'
PROVIDER_CHANGE = 'node updates may not change providerID except from "" to valid'


@register("", "nodes")
class NodeStrategy(Strategy):
    selectable_fields = ("spec.unschedulable",)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            cidrs = as_list(spec.get("podCIDRs"))
            if spec.get("podCIDR") and not cidrs:
                spec["podCIDRs"] = [spec["podCIDR"]]
            elif cidrs and not spec.get("podCIDR"):
                spec["podCIDR"] = cidrs[0]
        status = obj.get("status")
        if isinstance(status, dict) and status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
            status["allocatable"] = dict(status["capacity"])

    def prepare_for_create(self, obj: Obj) -> None:
        """Nodes keep the status they are registered with."""

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = spec_of(obj)
        errs = validate_taints(spec.get("taints"), "spec.taints")
        errs += _validate_pod_cidrs(as_list(spec.get("podCIDRs")), "spec.podCIDRs")
        return errs + _validate_resources(status_of(obj))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = spec_of(new), spec_of(old)
        old_cidrs = as_list(old_spec.get("podCIDRs"))
        if old_cidrs and as_list(new_spec.get("podCIDRs")) != old_cidrs:
            errs.append(forbidden("spec.podCIDRs", CIDR_CHANGE))
        old_provider = old_spec.get("providerID")
        if old_provider and new_spec.get("providerID") != old_provider:
            errs.append(forbidden("spec.providerID", PROVIDER_CHANGE))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _validate_resources(status_of(new))

    def field_values(self, obj: Obj) -> dict[str, str]:
        fields = super().field_values(obj)
        fields["spec.unschedulable"] = "true" if spec_of(obj).get("unschedulable") is True else "false"
        return fields


def validate_taints(taints: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in dicts(taints):
        item = f"{path}[{i}]"
        key, effect = as_str(taint.get("key")), as_str(taint.get("effect"))
        errs += qualified_name(key, f"{item}.key")
        errs += label_value(taint.get("value") or "", f"{item}.value")
        errs += validate_taint_effect(effect, f"{item}.effect", allow_empty=False)
        if (key, effect) in seen:
            errs.append(FieldError("FieldValueDuplicate", item, "taints must be unique by key and effect pair",
                                   shown({k: taint[k] for k in ("key", "value", "effect") if k in taint})))
            continue
        seen.add((key, effect))
    return errs


def _validate_pod_cidrs(cidrs: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, cidr in enumerate(cidrs):
        errs += [invalid_value(f"{path}[{i}]", cidr, m) for m in is_valid_cidr(as_str(cidr))]
    if len(cidrs) > 1 and not errs:
        families = {getattr(parse_ip_sloppy(as_str(c).partition("/")[0]), "version", 0) for c in cidrs}
        if len(cidrs) > 2 or len(families) != 2:
            errs.append(invalid_value(path, shown(cidrs), "may specify no more than one CIDR for each IP family"))
    return errs


def _validate_resources(status: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for field in ("capacity", "allocatable"):
        for name, value in as_dict(status.get(field)).items():
            errs += validate_quantity_value(name, value, f"status.{field}.{name}")
    return errs
