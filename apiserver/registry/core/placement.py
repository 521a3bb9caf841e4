"""Where a pod may run: tolerations, node selector, affinity, topology spread and scheduling gates.

Validation of the PodSpec fields the scheduler reads, plus the DefaultTolerationSeconds admission
step (every new pod tolerates ``not-ready``/``unreachable`` NoExecute taints for 300 s unless it
already tolerates them) and the taint-effect check shared with Node taints.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.core.common import (
    as_dict,
    as_list,
    as_str,
    dicts,
    is_int,
    label_value,
    one_of,
    qualified_name,
)
from machinery.errors import FieldError, duplicate, forbidden, invalid_value, not_supported, required
from machinery.labels import validate_label_selector
from machinery.validation import is_dns1123_label, validate_labels

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


# --- DefaultTolerationSeconds admission ---------------------------------------------------------


def add_default_tolerations(spec: dict[str, Any]) -> None:
    """Add the not-ready/unreachable NoExecute tolerations (300 s) a pod lacks. Idempotent."""
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not any(_tolerates_no_execute(t, key) for _, t in dicts(tolerations)):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    spec["tolerations"] = tolerations


def _tolerates_no_execute(toleration: dict[str, Any], key: str) -> bool:
    return toleration.get("key") in (None, "", key) and toleration.get("effect") in (None, "", "NoExecute")


# --- validation ---------------------------------------------------------------------------------


def validate_taint_effect(effect: Any, path: str, *, allow_empty: bool) -> list[FieldError]:
    if not effect:
        return [] if allow_empty else [required(path)]
    if effect not in TAINT_EFFECTS:
        return [not_supported(path, effect, TAINT_EFFECTS)]
    return []


def validate_tolerations(tolerations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in dicts(tolerations):
        item = f"{path}[{i}]"
        key, operator, value, effect = tol.get("key") or "", tol.get("operator") or "", tol.get("value") or "", \
            tol.get("effect") or ""
        if key:
            errs += qualified_name(key, f"{item}.key")
        if not key and operator != "Exists":
            errs.append(invalid_value(f"{item}.operator", operator, "operator must be Exists when `key` is empty, "
                                      'which means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid_value(f"{item}.effect", effect,
                                      "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("", "Equal"):
            errs += [invalid_value(f"{item}.operator", value, e.detail) for e in label_value(value, "")]
        elif operator == "Exists":
            if value:
                errs.append(invalid_value(f"{item}.operator", value, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{item}.operator", operator, ["Equal", "Exists"]))
        errs += validate_taint_effect(effect, f"{item}.effect", allow_empty=True)
    return errs


def validate_placement(spec: dict[str, Any], path: str) -> list[FieldError]:
    """nodeSelector, tolerations, affinity, topologySpreadConstraints, schedulingGates."""
    errs = validate_labels(as_dict(spec.get("nodeSelector")), f"{path}.nodeSelector")
    errs += validate_tolerations(spec.get("tolerations"), f"{path}.tolerations")
    errs += _validate_affinity(as_dict(spec.get("affinity")), f"{path}.affinity")
    errs += _validate_spread(spec.get("topologySpreadConstraints"), f"{path}.topologySpreadConstraints")
    errs += validate_scheduling_gates(spec.get("schedulingGates"), f"{path}.schedulingGates")
    return errs


def validate_scheduling_gates(gates: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, gate in dicts(gates):
        name = as_str(gate.get("name"))
        errs += qualified_name(name, f"{path}[{i}]")
        if name in seen:
            errs.append(duplicate(f"{path}[{i}]", name))
        seen.add(name)
    return errs


def only_removed_gates(new: Any, old: Any, path: str) -> list[FieldError]:
    """On update, scheduling gates may only be removed."""
    old_names = {as_str(g.get("name")) for _, g in dicts(old)}
    return [
        forbidden(f"{path}[{i}]", f"only deletion is allowed, but found new scheduling gate '{gate.get('name')}'")
        for i, gate in dicts(new)
        if as_str(gate.get("name")) not in old_names
    ]


def _validate_affinity(affinity: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    node = as_dict(affinity.get("nodeAffinity"))
    required_terms = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required_terms, dict):
        terms_path = f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        terms = as_list(required_terms.get("nodeSelectorTerms"))
        if not terms:
            errs.append(required(terms_path, "must have at least one node selector term"))
        for i, term in dicts(terms):
            errs += validate_node_selector_term(term, f"{terms_path}[{i}]")
    preferred_path = f"{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
    for i, pref in dicts(node.get("preferredDuringSchedulingIgnoredDuringExecution")):
        errs += _weight(pref.get("weight"), f"{preferred_path}[{i}].weight")
        errs += validate_node_selector_term(as_dict(pref.get("preference")), f"{preferred_path}[{i}].preference")
    for kind in ("podAffinity", "podAntiAffinity"):
        body = as_dict(affinity.get(kind))
        hard = f"{path}.{kind}.requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in dicts(body.get("requiredDuringSchedulingIgnoredDuringExecution")):
            errs += _pod_affinity_term(term, f"{hard}[{i}]")
        soft = f"{path}.{kind}.preferredDuringSchedulingIgnoredDuringExecution"
        for i, weighted in dicts(body.get("preferredDuringSchedulingIgnoredDuringExecution")):
            errs += _weight(weighted.get("weight"), f"{soft}[{i}].weight")
            errs += _pod_affinity_term(as_dict(weighted.get("podAffinityTerm")), f"{soft}[{i}].podAffinityTerm")
    return errs


def _weight(weight: Any, path: str) -> list[FieldError]:
    if not is_int(weight) or not 1 <= weight <= 100:
        return [invalid_value(path, weight, "must be in the range 1-100")]
    return []


def validate_node_selector_term(term: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for j, req in dicts(term.get("matchExpressions")):
        item = f"{path}.matchExpressions[{j}]"
        operator, values = req.get("operator"), as_list(req.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{item}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{item}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif operator in ("Gt", "Lt"):
            if len(values) != 1:
                errs.append(required(f"{item}.values",
                                     "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        else:
            errs.append(invalid_value(f"{item}.operator", operator, "not a valid selector operator"))
        errs += qualified_name(as_str(req.get("key")), f"{item}.key")
    for j, req in dicts(term.get("matchFields")):
        item = f"{path}.matchFields[{j}]"
        if req.get("key") != "metadata.name":
            errs.append(not_supported(f"{item}.key", req.get("key"), ["metadata.name"]))
        if req.get("operator") not in ("In", "NotIn"):
            errs.append(invalid_value(f"{item}.operator", req.get("operator"), "not a valid selector operator"))
        elif len(as_list(req.get("values"))) != 1:
            errs.append(required(f"{item}.values", "must be only one value when `operator` is 'In' or 'NotIn' "
                                 "for node field selector"))
    return errs


def _pod_affinity_term(term: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("labelSelector", "namespaceSelector"):
        if isinstance(term.get(key), dict):
            errs += validate_label_selector(term[key], f"{path}.{key}")
    for name in as_list(term.get("namespaces")):
        errs += [invalid_value(f"{path}.namespace", name, m) for m in is_dns1123_label(as_str(name))]
    topology_key = as_str(term.get("topologyKey"))
    if not topology_key:
        errs.append(required(f"{path}.topologyKey", "can not be empty"))
    return errs + qualified_name(topology_key, f"{path}.topologyKey")


def _validate_spread(constraints: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, tsc in dicts(constraints):
        item = f"{path}[{i}]"
        skew = tsc.get("maxSkew")
        if not is_int(skew) or skew <= 0:
            errs.append(invalid_value(f"{item}.maxSkew", skew, "must be greater than zero"))
        key = as_str(tsc.get("topologyKey"))
        if not key:
            errs.append(required(f"{item}.topologyKey", "can not be empty"))
        else:
            errs += qualified_name(key, f"{item}.topologyKey")
        action = tsc.get("whenUnsatisfiable")
        errs += one_of(action, f"{item}.whenUnsatisfiable", ["DoNotSchedule", "ScheduleAnyway"])
        if (key, as_str(action)) in seen:
            errs.append(duplicate(f"{item}.{{topologyKey, whenUnsatisfiable}}", f"{{{key}, {action}}}"))
        seen.add((key, as_str(action)))
        min_domains = tsc.get("minDomains")
        if min_domains is not None:
            if not is_int(min_domains) or min_domains <= 0:
                errs.append(invalid_value(f"{item}.minDomains", min_domains, "must be greater than 0"))
            elif action != "DoNotSchedule":
                errs.append(invalid_value(f"{item}.minDomains", min_domains,
                                          f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"))
        if isinstance(tsc.get("labelSelector"), dict):
            errs += validate_label_selector(tsc["labelSelector"], f"{item}.labelSelector")
        for policy in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            errs += one_of(tsc.get(policy), f"{item}.{policy}", ["Honor", "Ignore"], allow_empty=True)
    return errs
