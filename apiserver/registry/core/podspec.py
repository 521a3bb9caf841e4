"""PodSpec defaulting and validation, shared by Pods and every workload's pod template.

The stable public surface other registries import (Deployments, ReplicaSets, StatefulSets,
DaemonSets, Jobs, CronJobs):

- :func:`default_pod_spec` — SetDefaults_PodSpec and the defaults of containers and volumes (not
  the Pod-only ones such as requests from limits, which live in the pod strategy);
- :func:`validate_pod_spec` — ValidatePodSpec at a field path (``"spec"`` or ``"spec.template.spec"``);
- :func:`validate_pod_template` — ValidatePodTemplateSpec (labels, annotations, spec);
- :func:`pod_spec_update_errors` — ValidatePodUpdate's spec rules: only images, activeDeadlineSeconds
  (set or lowered), tolerations (additions) and scheduling-gate removals may change.

All functions take plain dicts; the ``default_*`` ones mutate, the others never do.
"""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.core.common import (
    as_dict,
    as_list,
    as_str,
    describe_diff,
    dicts,
    dns_label,
    dns_subdomain,
    in_range,
    ip_address,
    is_int,
    nonnegative,
    normalized,
    one_of,
    qualified_name,
    shown,
)
from apiserver.registry.core.containers import MAX_ID, default_container, validate_all_containers
from apiserver.registry.core.placement import only_removed_gates, validate_placement
from apiserver.registry.core.resourcelist import validate_resource_requirements
from apiserver.registry.core.volumes import default_volume, validate_volumes
from machinery.errors import FieldError, forbidden, invalid_value, required
from machinery.validation import inclusive_range_error, validate_annotations, validate_labels

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
MAX_INT32 = 2**31 - 1
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
UPDATABLE_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
UPDATE_FORBIDDEN = "pod updates may not change fields other than " + ",".join(UPDATABLE_FIELDS)
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


# --- defaults -----------------------------------------------------------------------------------


def default_pod_spec(spec: Any) -> None:
    """SetDefaults_PodSpec, containers and volumes. Idempotent; safe on a malformed spec."""
    if not isinstance(spec, dict):
        return
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    # v1's deprecated serviceAccount mirrors serviceAccountName (conversion does this both ways)
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for kind in CONTAINER_LISTS:
        for _, ctr in dicts(spec.get(kind)):
            default_container(ctr)
    for _, volume in dicts(spec.get("volumes")):
        default_volume(volume)


# --- validation ---------------------------------------------------------------------------------


def validate_pod_spec(spec: Any, path: str, *, pod: bool = False) -> list[FieldError]:
    """ValidatePodSpec. ``pod`` adds the checks Kubernetes makes on Pods only (image whitespace)."""
    if not isinstance(spec, dict):
        return [required(path)]
    volumes, errs = validate_volumes(spec.get("volumes"), f"{path}.volumes")
    errs += validate_all_containers(spec, path, volumes, pod=pod)
    errs += one_of(spec.get("restartPolicy"), f"{path}.restartPolicy", RESTART_POLICIES)
    errs += one_of(spec.get("dnsPolicy"), f"{path}.dnsPolicy", DNS_POLICIES)
    errs += _validate_dns_config(spec, f"{path}.dnsConfig")
    errs += validate_placement(spec, path)
    for name in ("serviceAccountName", "nodeName", "priorityClassName"):
        if spec.get(name):
            errs += dns_subdomain(spec[name], f"{path}.{name}")
    for name in ("hostname", "subdomain"):
        if spec.get(name):
            errs += dns_label(spec[name], f"{path}.{name}")
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid_value(f"{path}.activeDeadlineSeconds", deadline, inclusive_range_error(1, MAX_INT32)))
    errs += nonnegative(spec.get("terminationGracePeriodSeconds"), f"{path}.terminationGracePeriodSeconds")
    errs += _validate_security_context(as_dict(spec.get("securityContext")), f"{path}.securityContext")
    if spec.get("resources") is not None:
        errs += validate_resource_requirements(spec.get("resources"), f"{path}.resources")
    for i, alias in dicts(spec.get("hostAliases")):
        errs += ip_address(as_str(alias.get("ip")), f"{path}.hostAliases[{i}].ip")
        for j, hostname in enumerate(as_list(alias.get("hostnames"))):
            errs += dns_subdomain(hostname, f"{path}.hostAliases[{i}].hostnames[{j}]")
    for i, gate in dicts(spec.get("readinessGates")):
        errs += qualified_name(as_str(gate.get("conditionType")), f"{path}.readinessGates[{i}].conditionType")
    if isinstance(spec.get("os"), dict):
        errs += one_of(spec["os"].get("name"), f"{path}.os.name", ["linux", "windows"])
    return errs


def _validate_dns_config(spec: dict[str, Any], path: str) -> list[FieldError]:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if not isinstance(config, dict):
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.get("nameservers"):
            return [required(f"{path}.nameservers",
                             "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    if not isinstance(config, dict):
        return []
    errs: list[FieldError] = []
    nameservers = as_list(config.get("nameservers"))
    if len(nameservers) > MAX_NAMESERVERS:
        errs.append(invalid_value(f"{path}.nameservers", shown(nameservers),
                                  f"must not have more than {MAX_NAMESERVERS} nameservers"))
    for i, server in enumerate(nameservers):
        errs += ip_address(server, f"{path}.nameservers[{i}]")
    searches = [as_str(s) for s in as_list(config.get("searches"))]
    if len(searches) > MAX_SEARCH_PATHS:
        errs.append(invalid_value(f"{path}.searches", shown(searches),
                                  f"must not have more than {MAX_SEARCH_PATHS} search paths"))
    if len(" ".join(searches)) > MAX_SEARCH_CHARS:
        errs.append(invalid_value(f"{path}.searches", shown(searches), f"must not have more than "
                                  f"{MAX_SEARCH_CHARS} characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        if i == 0 and search == ".":
            continue
        errs += dns_subdomain(search.removesuffix("."), f"{path}.searches[{i}]")
    for i, option in dicts(config.get("options")):
        if not option.get("name"):
            errs.append(required(f"{path}.options[{i}]", "must not be empty"))
    return errs


def _validate_security_context(ctx: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for name in ("runAsUser", "runAsGroup", "fsGroup"):
        errs += in_range(ctx.get(name), f"{path}.{name}", 0, MAX_ID)
    for i, group in enumerate(as_list(ctx.get("supplementalGroups"))):
        errs += in_range(group, f"{path}.supplementalGroups[{i}]", 0, MAX_ID)
    for i, sysctl in dicts(ctx.get("sysctls")):
        if not sysctl.get("name"):
            errs.append(required(f"{path}.sysctls[{i}].name"))
    return errs


def validate_pod_template(template: Any, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpec at ``path`` (e.g. ``"spec.template"``)."""
    if not isinstance(template, dict):
        return [required(path)]
    meta = as_dict(template.get("metadata"))
    errs = validate_labels(as_dict(meta.get("labels")), f"{path}.labels")
    errs += validate_annotations(as_dict(meta.get("annotations")), f"{path}.annotations")
    spec = template.get("spec")
    errs += validate_pod_spec(spec, f"{path}.spec")
    if as_list(as_dict(spec).get("ephemeralContainers")):
        errs.append(forbidden(f"{path}.spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))
    return errs


# --- update -------------------------------------------------------------------------------------


def pod_spec_update_errors(new_spec: Any, old_spec: Any, path: str) -> list[FieldError]:
    """The pod update rules: everything but the updatable fields is immutable. Never mutates."""
    new, old = as_dict(new_spec), as_dict(old_spec)
    errs = _deadline_update(new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds"),
                            f"{path}.activeDeadlineSeconds")
    if errs:
        return errs
    for kind in ("containers", "initContainers"):
        if len(as_list(new.get(kind))) != len(as_list(old.get(kind))):
            return [forbidden(f"{path}.{kind}", "pod updates may not add or remove containers")]
    errs += _only_added_tolerations(new.get("tolerations"), old.get("tolerations"), f"{path}.tolerations")
    errs += only_removed_gates(new.get("schedulingGates"), old.get("schedulingGates"), f"{path}.schedulingGates")
    if normalized(new) == normalized(old):
        return errs
    munged = copy.deepcopy(new)
    for kind in ("containers", "initContainers"):
        for (_, ctr), (_, old_ctr) in zip(dicts(munged.get(kind)), dicts(old.get(kind)), strict=False):
            _set_or_drop(ctr, "image", old_ctr.get("image"))
    for name in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        _set_or_drop(munged, name, old.get(name))
    old_grace = old.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if as_list(old.get("schedulingGates")):
        errs += _gated_node_selector(munged.get("nodeSelector"), old.get("nodeSelector"), f"{path}.nodeSelector")
        _set_or_drop(munged, "nodeSelector", old.get("nodeSelector"))
    if normalized(munged) != normalized(old):
        errs.append(forbidden(path, UPDATE_FORBIDDEN + "\n" + describe_diff(old, munged)))
    return errs


def _deadline_update(new: Any, old: Any, path: str) -> list[FieldError]:
    if new is not None:
        if is_int(new) and not 0 <= new <= MAX_INT32:
            return [invalid_value(path, new, inclusive_range_error(0, MAX_INT32))]
        if is_int(old) and is_int(new) and old < new:
            return [invalid_value(path, new, "must be less than or equal to previous value")]
    elif old is not None:
        return [invalid_value(path, None, "must not update from a positive integer to nil value")]
    return []


def _only_added_tolerations(new: Any, old: Any, path: str) -> list[FieldError]:
    """Every existing toleration must still be there; only its tolerationSeconds may change."""
    def sans_seconds(tol: dict[str, Any]) -> bytes:
        return normalized({k: v for k, v in tol.items() if k != "tolerationSeconds"})

    remaining = [sans_seconds(t) for _, t in dicts(new)]
    for _, tol in dicts(old):
        if sans_seconds(tol) not in remaining:
            return [forbidden(path, "existing toleration can not be modified except its tolerationSeconds")]
    return []


def _gated_node_selector(new: Any, old: Any, path: str) -> list[FieldError]:
    """A gated pod may gain nodeSelector entries but not change or drop existing ones."""
    new_map = as_dict(new)
    return [invalid_value(f"{path}[{key}]", new_map.get(key), "field is immutable")
            for key, value in as_dict(old).items() if new_map.get(key) != value]


def _set_or_drop(obj: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        obj.pop(key, None)
    else:
        obj[key] = copy.deepcopy(value)
