"""The Pod strategy: defaults and admission on create, validation, status rules, binding, grace.

What Kubernetes spreads over SetDefaults_Pod, the pod registry strategy and a few admission
plugins happens here for kubemini's Pods:

- defaults (every write): the shared PodSpec defaults plus the Pod-only ones — requests default to
  limits, ``enableServiceLinks: true``, hostPort = containerPort under hostNetwork;
- admission (create only): ServiceAccount (``serviceAccountName: default``, no token volume),
  Priority (built-in system classes, else 0; ``preemptionPolicy: PreemptLowerPriority``) and
  DefaultTolerationSeconds;
- ``status`` starts as ``{phase: Pending, qosClass: ...}``; ``/status`` updates are checked by
  :meth:`PodStrategy.validate_status_update`;
- :func:`bind` is the pure core of ``pods/binding``; :meth:`PodStrategy.deletion_grace_period`
  mirrors CheckGracefulDelete.
"""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core.common import (
    Shown,
    as_dict,
    as_list,
    as_str,
    dicts,
    ip_address,
    is_int,
    meta_of,
    one_of,
    qualified_name,
    spec_of,
    status_of,
)
from apiserver.registry.core.containers import default_host_network_ports
from apiserver.registry.core.placement import add_default_tolerations
from apiserver.registry.core.podresize import prepare_resize, validate_resize
from apiserver.registry.core.podspec import default_pod_spec, pod_spec_update_errors, validate_pod_spec
from apiserver.registry.core.qos import pod_qos_class
from apiserver.registry.core.resourcelist import default_requests_from_limits
from apiserver.registry.strategy import Obj, Strategy
from machinery import errors as api
from machinery.errors import FieldError, duplicate, forbidden, invalid_value
from machinery.meta import now_rfc3339
from machinery.validation import is_dns1123_subdomain, parse_ip_sloppy

PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
TERMINAL_PHASES = ("Succeeded", "Failed")
CONDITION_STATUSES = ["True", "False", "Unknown"]
SYSTEM_CONDITIONS = ("PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers",
                     "DisruptionTarget", "PodResizePending", "PodResizeInProgress")
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
DEFAULT_GRACE_SECONDS = 30


@register("", "pods")
class PodStrategy(Strategy):
    tracks_generation = True
    #: subresources whose spec changes count for metadata.generation like a main update does
    generation_subresources = ("resize",)
    selectable_fields = (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName",
    )

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_pod_spec(spec)
        for kind in ("containers", "initContainers"):
            for _, ctr in dicts(spec.get(kind)):
                default_requests_from_limits(ctr.get("resources"))
                if spec.get("hostNetwork") is True:
                    default_host_network_ports(ctr)
        default_requests_from_limits(spec.get("resources"))
        if spec.get("enableServiceLinks") is None:
            spec["enableServiceLinks"] = True

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            self._admit(obj, spec)
        super().prepare_for_create(obj)

    def _admit(self, obj: Obj, spec: dict[str, Any]) -> None:
        """The ServiceAccount, Priority and DefaultTolerationSeconds admission plugins."""
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec["serviceAccount"] = "default"
        class_name = as_str(spec.get("priorityClassName"))
        computed = SYSTEM_PRIORITY_CLASSES.get(class_name)
        if computed is not None or not class_name:
            computed = computed or 0
            given = spec.get("priority")
            if given is not None and given != computed:
                raise api.forbidden_error(
                    "pods", as_str(meta_of(obj).get("name")),
                    f"the integer value of priority ({given}) must not be provided in pod spec; priority "
                    f"admission controller computed {computed} from the given PriorityClass name")
            spec["priority"] = computed
        elif spec.get("priority") is None:
            spec["priority"] = 0
        if not spec.get("preemptionPolicy"):
            spec["preemptionPolicy"] = "PreemptLowerPriority"
        add_default_tolerations(spec)

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj)}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        errs = validate_pod_spec(spec, "spec", pod=True)
        if as_list(as_dict(spec).get("ephemeralContainers")):
            errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = validate_pod_spec(new.get("spec"), "spec", pod=True)
        return errs + pod_spec_update_errors(new.get("spec"), old.get("spec"), "spec")

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_pod_status(status_of(new), status_of(old))

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """Keep the v1 pairs ``podIP``/``podIPs`` and ``hostIP``/``hostIPs`` in step (v1 conversion)."""
        status = new.get("status")
        if isinstance(status, dict):
            normalize_ip_pair(status, "podIP", "podIPs")
            normalize_ip_pair(status, "hostIP", "hostIPs")

    # --- pods/binding (for a store that routes subresource X to prepare_for_X / validate_X) -----

    def prepare_for_binding(self, new: Obj, old: Obj) -> None:
        """The object :func:`bind` returned is final: nodeName and the PodScheduled condition stay."""

    def validate_binding(self, new: Obj, old: Obj) -> list[FieldError]:
        """:func:`bind` already checked everything; the main update rules must not run (they forbid
        changing ``spec.nodeName``)."""
        return []

    # --- pods/resize: only container cpu/memory change (apiserver.registry.core.podresize) ----------

    def prepare_for_resize(self, new: Obj, old: Obj) -> None:
        prepare_resize(new, old)

    def validate_resize(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_resize(new, old)

    def field_values(self, obj: Obj) -> dict[str, str]:
        fields = super().field_values(obj)
        fields["spec.hostNetwork"] = "true" if spec_of(obj).get("hostNetwork") is True else "false"
        status = status_of(obj)
        ips = [as_str(ip.get("ip")) for _, ip in dicts(status.get("podIPs"))]
        fields["status.podIP"] = ips[0] if ips else as_str(status.get("podIP"))
        fields["status.podIPs"] = ",".join(ips)
        return fields

    def deletion_grace_period(self, obj: Obj, requested: int | None) -> int:
        """CheckGracefulDelete: unscheduled or finished pods go at once; negative becomes 1."""
        spec = spec_of(obj)
        if requested is not None:
            period = requested
        else:
            configured = spec.get("terminationGracePeriodSeconds")
            period = configured if is_int(configured) else DEFAULT_GRACE_SECONDS
        if not spec.get("nodeName") or status_of(obj).get("phase") in TERMINAL_PHASES:
            period = 0
        return 1 if period < 0 else period


def normalize_ip_pair(status: dict[str, Any], single: str, plural: str) -> None:
    ips = as_list(status.get(plural))
    if status.get(single) and not ips:
        status[plural] = [{"ip": status[single]}]
    elif ips and isinstance(ips[0], dict) and ips[0].get("ip"):
        status[single] = ips[0]["ip"]


# --- status -------------------------------------------------------------------------------------


def validate_pod_status(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = one_of(new.get("phase"), "status.phase", PHASES, allow_empty=True)
    old_phase = old.get("phase")
    if old_phase in TERMINAL_PHASES and new.get("phase") != old_phase:
        errs.append(forbidden("status.phase", f'cannot transition from terminal phase "{old_phase}" '
                                              f'to "{new.get("phase") or ""}"'))
    for i, cond in dicts(new.get("conditions")):
        ctype = as_str(cond.get("type"))
        if ctype not in SYSTEM_CONDITIONS:
            errs += qualified_name(ctype, f"status.conditions[{i}].Type")
        errs += one_of(cond.get("status"), f"status.conditions[{i}].status", CONDITION_STATUSES)
    nominated = new.get("nominatedNodeName")
    if nominated and nominated != old.get("nominatedNodeName"):
        errs += [invalid_value("status.nominatedNodeName", nominated, m)
                 for m in is_dns1123_subdomain(as_str(nominated))]
    errs += _validate_ips(new, old, "podIPs")
    errs += _validate_ips(new, old, "hostIPs")
    return errs


def _validate_ips(new: dict[str, Any], old: dict[str, Any], field: str) -> list[FieldError]:
    """New addresses must be IPs (existing ones may stay), at most one per family, no duplicates."""
    path = f"status.{field}"
    existing = {as_str(ip.get("ip")) for _, ip in dicts(old.get(field))}
    entries = [as_str(ip.get("ip")) for _, ip in dicts(new.get(field))]
    errs: list[FieldError] = []
    for i, ip in enumerate(entries):
        if ip not in existing:
            errs += ip_address(ip, f"{path}[{i}]")
    if len(entries) > 1:
        parsed = [parse_ip_sloppy(ip) for ip in entries]
        versions = {p.version for p in parsed if p is not None}
        if len(entries) > 2 or len(versions) != 2:
            errs.append(invalid_value(path, _go_ips(entries), "may specify no more than one IP for each IP family"))
        seen: set[str] = set()
        for i, ip in enumerate(entries):
            if ip in seen:
                errs.append(duplicate(f"{path}[{i}]", ip))
            seen.add(ip)
    return errs


def _go_ips(ips: list[str]) -> Any:
    return Shown("[" + " ".join("{" + ip + "}" for ip in ips) + "]")


# --- binding ------------------------------------------------------------------------------------


def bind(pod: Obj | None, binding: Obj, *, now: str | None = None) -> Obj:
    """pods/binding: a copy of ``pod`` assigned to ``binding.target.name``. Pure; raises StatusError.

    400 for a target that is not a Node (or has no name), 409 when the pod is being deleted, is
    already assigned, has scheduling gates, or fails the binding's uid/resourceVersion preconditions;
    404 when there is no pod (``pod`` is None).
    """
    if pod is None:
        raise api.not_found("pods", as_str(meta_of(binding).get("name")))
    meta = meta_of(pod)
    name = as_str(meta.get("name"))
    target = as_dict(binding.get("target"))
    problems = []
    if target.get("kind") and target.get("kind") != "Node":
        problems.append(api.not_supported("target.kind", target.get("kind"), ["Node", "<empty>"]))
    if not target.get("name"):
        problems.append(api.required("target.name"))
    if problems:
        text = str(problems[0]) if len(problems) == 1 else "[" + ", ".join(str(p) for p in problems) + "]"
        raise api.bad_request(text)
    bmeta = meta_of(binding)
    if bmeta.get("name") and bmeta.get("name") != name:
        raise api.bad_request("name in URL does not match name in Binding object")
    _check_binding_preconditions(pod, bmeta, name)
    spec = spec_of(pod)
    if meta.get("deletionTimestamp"):
        raise _binding_conflict(name, f"pod {name} is being deleted, cannot be assigned to a host")
    if spec.get("nodeName"):
        raise _binding_conflict(name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
    if as_list(spec.get("schedulingGates")):
        raise _binding_conflict(name, f"pod {name} has non-empty .spec.schedulingGates")
    bound = copy.deepcopy(pod)
    bound.setdefault("spec", {})["nodeName"] = target["name"]
    annotations = as_dict(bmeta.get("annotations"))
    if annotations:
        bound["metadata"].setdefault("annotations", {}).update(annotations)
    status = bound.get("status")
    if not isinstance(status, dict):
        status = bound["status"] = {}
    set_condition(status, {"type": "PodScheduled", "status": "True"}, now or now_rfc3339())
    return bound


def _check_binding_preconditions(pod: Obj, bmeta: dict[str, Any], name: str) -> None:
    meta = meta_of(pod)
    uid, rv = bmeta.get("uid"), bmeta.get("resourceVersion")
    if uid and uid != meta.get("uid"):
        raise _binding_conflict(name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                                      f"{meta.get('uid') or ''}")
    if rv and rv != meta.get("resourceVersion"):
        raise _binding_conflict(name, f"Precondition failed: ResourceVersion in precondition: {rv}, "
                                      f"ResourceVersion in object meta: {meta.get('resourceVersion') or ''}")


def _binding_conflict(name: str, text: str) -> api.StatusError:
    return api.conflict("pods/binding", name, text)


def set_condition(status: dict[str, Any], condition: dict[str, Any], now: str) -> None:
    """UpdatePodCondition: replace the condition of that type; the transition time moves only when
    the status changes."""
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    new = {"type": condition["type"], "status": condition["status"], "lastProbeTime": None,
           "lastTransitionTime": now}
    new.update({k: v for k, v in condition.items() if k not in new})
    for i, existing in enumerate(conditions):
        if isinstance(existing, dict) and existing.get("type") == condition["type"]:
            if existing.get("status") == condition["status"] and existing.get("lastTransitionTime"):
                new["lastTransitionTime"] = existing["lastTransitionTime"]
            conditions[i] = new
            return
    conditions.append(new)
