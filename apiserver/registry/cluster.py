"""Strategies for the small cluster-level groups: Leases, EndpointSlices, PodDisruptionBudgets,
PriorityClasses.

Each of these kinds carries a few rules that the OpenAPI schema cannot express and that clients
notice: leader election relies on Leases being creatable by PUT; kube-proxy-like consumers rely on
EndpointSlice addresses matching their ``addressType`` (which never changes); the eviction API and
the scheduler rely on a PodDisruptionBudget and a PriorityClass being well-formed. Messages and
paths follow ``pkg/apis/{coordination,discovery,policy,scheduling}/validation``.
"""

from __future__ import annotations

import ipaddress
import re

from apiserver.registry.builtin import register
from apiserver.registry.core.common import PROTOCOLS
from apiserver.registry.strategy import Obj, Strategy
from apiserver.registry.workload import (
    WorkloadStrategy,
    json_value,
    set_default,
    status_counters,
    validate_int_or_percent,
)
from machinery import errors as api
from machinery.errors import FieldError
from machinery.labels import validate_label_selector
from machinery.validation import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    parse_ip_sloppy,
    regex_error,
    validate_labels,
)

# --- coordination.k8s.io Leases --------------------------------------------------------------------


@register("coordination.k8s.io", "leases")
class LeaseStrategy(Strategy):
    allow_create_on_update = True  # client-go's lease lock may PUT a Lease that does not exist yet

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            errs.append(api.invalid_value("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            errs.append(api.invalid_value("spec.leaseTransitions", transitions,
                                          "must be greater than or equal to 0"))
        strategy = spec.get("strategy")
        if strategy is not None:
            if "/" in strategy:
                errs += [api.invalid_value("spec.strategy", strategy, m) for m in is_qualified_name(strategy)]
            elif strategy != "OldestEmulationVersion":
                errs.append(api.not_supported("spec.strategy", strategy, ["OldestEmulationVersion"]))
        if spec.get("preferredHolder") and not strategy:
            errs.append(api.forbidden("spec.preferredHolder",
                                      "may only be specified if `strategy` is defined"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new)


# --- discovery.k8s.io EndpointSlices ---------------------------------------------------------------

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
MAX_ENDPOINTS, MAX_ADDRESSES, MAX_PORTS, MAX_TOPOLOGY = 1000, 100, 20000, 16


def _too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(api.TOO_MANY, path, f"{actual}: must have at most {limit} items")


@register("discovery.k8s.io", "endpointslices")
class EndpointSliceStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or []:
            if isinstance(port, dict):
                set_default(port, "name", "")
                set_default(port, "protocol", "TCP")

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Anything but metadata counts, and so do label changes (the service-name label among them)."""
        new_labels = (new.get("metadata") or {}).get("labels") or {}
        old_labels = (old.get("metadata") or {}).get("labels") or {}
        return super().spec_changed(new, old) or new_labels != old_labels

    def validate(self, obj: Obj) -> list[FieldError]:
        address_type = obj.get("addressType") or ""
        errs: list[FieldError] = []
        if not address_type:
            errs.append(api.required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            errs.append(api.not_supported("addressType", address_type, ADDRESS_TYPES))
        errs += _endpoints_errors(obj.get("endpoints") or [], address_type)
        return errs + _ports_errors(obj.get("ports") or [])

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if (new.get("addressType") or "") != (old.get("addressType") or ""):
            errs.append(api.invalid_value("addressType", new.get("addressType") or "", "field is immutable"))
        return errs


def _endpoints_errors(endpoints: list, address_type: str) -> list[FieldError]:
    if len(endpoints) > MAX_ENDPOINTS:
        return [_too_many("endpoints", len(endpoints), MAX_ENDPOINTS)]
    errs: list[FieldError] = []
    for i, endpoint in enumerate(endpoints):
        endpoint = endpoint or {}
        path = f"endpoints[{i}]"
        addresses = endpoint.get("addresses") or []
        if not addresses:
            errs.append(api.required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errs.append(_too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            errs += _address_errors(address, address_type, f"{path}.addresses[{j}]")
        node_name = endpoint.get("nodeName")
        if node_name is not None:
            errs += [api.invalid_value(f"{path}.nodeName", node_name, m)
                     for m in is_dns1123_subdomain(node_name)]
        topology = endpoint.get("deprecatedTopology") or {}
        if len(topology) > MAX_TOPOLOGY:
            errs.append(_too_many(f"{path}.deprecatedTopology", len(topology), MAX_TOPOLOGY))
        errs += validate_labels(topology, f"{path}.deprecatedTopology")
        hostname = endpoint.get("hostname")
        if hostname is not None:
            errs += [api.invalid_value(f"{path}.hostname", hostname, m) for m in is_dns1123_label(hostname)]
    return errs


def _address_errors(address: str, address_type: str, path: str) -> list[FieldError]:
    if address_type == "FQDN":
        return _fqdn_errors(address, path)
    if address_type not in ("IPv4", "IPv6"):
        return []  # unknown types are reported on addressType and not checked further
    ip = parse_ip_sloppy(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Go treats ::ffff:a.b.c.d as an IPv4 address
    wanted = ipaddress.IPv4Address if address_type == "IPv4" else ipaddress.IPv6Address
    if not isinstance(ip, wanted):
        return [api.invalid_value(path, address, f"must be a valid {address_type} address")]
    return _special_ip_errors(ip, address, path)


def _special_ip_errors(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str,
                       path: str) -> list[FieldError]:
    errs = []
    if ip.is_unspecified:
        errs.append(api.invalid_value(path, text, f"may not be unspecified ({text})"))
    if ip.is_loopback:
        errs.append(api.invalid_value(path, text, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        errs.append(api.invalid_value(path, text,
                                      "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    packed = ip.packed
    link_local_multicast = (packed[:3] == b"\xe0\x00\x00") if ip.version == 4 else (
        packed[0] == 0xFF and packed[1] & 0x0F == 0x02)
    if link_local_multicast:
        errs.append(api.invalid_value(
            path, text, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def _fqdn_errors(name: str, path: str) -> list[FieldError]:
    if not name:
        return [api.required(path)]
    name = name.removesuffix(".")
    errs = is_dns1123_subdomain(name)
    if errs:
        return [api.invalid_value(path, name, ",".join(errs))]
    if len(name.split(".")) < 2:
        return [api.invalid_value(path, name,
                                  "should be a domain with at least two segments separated by dots")]
    for label in name.split("."):
        errs = is_dns1123_label(label)
        if errs:
            return [api.invalid_value(path, label, ",".join(errs))]
    return []


def _ports_errors(ports: list) -> list[FieldError]:
    if len(ports) > MAX_PORTS:
        return [_too_many("ports", len(ports), MAX_PORTS)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        port = port or {}
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errs += [api.invalid_value(f"{path}.name", name, m) for m in is_dns1123_label(name)]
        if name in seen:
            errs.append(api.duplicate(f"{path}.name", name))
        seen.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(api.required(f"{path}.protocol"))
        elif protocol not in PROTOCOLS:
            errs.append(api.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if app_protocol is not None:
            errs += [api.invalid_value(f"{path}.appProtocol", app_protocol, m)
                     for m in is_qualified_name(app_protocol)]
    return errs


# --- policy PodDisruptionBudgets -------------------------------------------------------------------

EVICTION_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]
CONDITION_STATUSES = ["False", "True", "Unknown"]
REASON_FMT = "[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?"
REASON_MSG = regex_error(
    "a condition reason must start with alphabetic character, optionally followed by a string of "
    "alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'",
    REASON_FMT, "my_name", "MY_NAME", "MyName", "ReasonA,ReasonB", "ReasonA:ReasonB")
_REASON_RE = re.compile(REASON_FMT)


@register("policy", "poddisruptionbudgets")
class PodDisruptionBudgetStrategy(WorkloadStrategy):
    zero_status = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            errs.append(api.invalid_value("spec", json_value(spec),
                                          "minAvailable and maxUnavailable cannot be both set"))
        for key in ("minAvailable", "maxUnavailable"):
            errs += validate_int_or_percent(spec.get(key), f"spec.{key}")
        errs += validate_label_selector(spec.get("selector"), "spec.selector")
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in EVICTION_POLICIES:
            errs.append(api.not_supported("spec.unhealthyPodEvictionPolicy", policy, EVICTION_POLICIES))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        errs = validate_conditions(status.get("conditions") or [], "status.conditions")
        return errs + status_counters(status, ("disruptionsAllowed", "currentHealthy", "desiredHealthy",
                                               "expectedPods"))


def validate_conditions(conditions: list, path: str) -> list[FieldError]:
    """metav1 ValidateConditions: unique qualified types, known statuses, a reason, a transition time."""
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, condition in enumerate(conditions):
        condition = condition or {}
        item = f"{path}[{i}]"
        kind = condition.get("type") or ""
        if kind in seen:
            errs.append(api.duplicate(f"{item}.type", kind))
        seen.add(kind)
        errs += [api.invalid_value(f"{item}.type", kind, m) for m in is_qualified_name(kind)]
        status = condition.get("status") or ""
        if status not in CONDITION_STATUSES:
            errs.append(api.not_supported(f"{item}.status", status, CONDITION_STATUSES))
        generation = condition.get("observedGeneration")
        if generation is not None and generation < 0:
            errs.append(api.invalid_value(f"{item}.observedGeneration", generation,
                                          "must be greater than or equal to zero"))
        if not condition.get("lastTransitionTime"):
            errs.append(api.required(f"{item}.lastTransitionTime", "must be set"))
        reason = condition.get("reason") or ""
        if not reason:
            errs.append(api.required(f"{item}.reason", "must be set"))
        else:
            if not _REASON_RE.fullmatch(reason):
                errs.append(api.invalid_value(f"{item}.reason", reason, REASON_MSG))
            if len(reason) > 1024:
                errs.append(api.too_long(f"{item}.reason", 1024))
        if len(condition.get("message") or "") > 32 * 1024:
            errs.append(api.too_long(f"{item}.message", 32 * 1024))
    return errs


# --- scheduling.k8s.io PriorityClasses -------------------------------------------------------------

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]


@register("scheduling.k8s.io", "priorityclasses")
class PriorityClassStrategy(Strategy):
    """globalDefault uniqueness is an admission check in Kubernetes (Priority plugin): not done here."""

    def default(self, obj: Obj) -> None:
        set_default(obj, "preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: Obj) -> list[FieldError]:
        name = (obj.get("metadata") or {}).get("name") or ""
        value = obj.get("value") or 0
        errs: list[FieldError] = []
        if name.startswith("system-"):
            problem = _system_class_problem(name, value, bool(obj.get("globalDefault")))
            if problem:
                errs.append(api.forbidden("metadata.name", "priority class names with 'system-' prefix are "
                                                           f"reserved for system use only. error: {problem}"))
        elif value > HIGHEST_USER_PRIORITY:
            errs.append(api.forbidden("value", f"maximum allowed value of a user defined priority is "
                                               f"{HIGHEST_USER_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy is not None:
            if not policy:
                errs.append(api.required("preemptionPolicy"))
            elif policy not in PREEMPTION_POLICIES:
                errs.append(api.not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if (new.get("value") or 0) != (old.get("value") or 0):
            errs.append(api.forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            errs.append(api.invalid_value("preemptionPolicy", new.get("preemptionPolicy"),
                                          "field is immutable"))
        return errs


def _system_class_problem(name: str, value: int, global_default: bool) -> str:
    if name not in SYSTEM_PRIORITY_CLASSES:
        return f"{name} is not a known system priority class"
    if value != SYSTEM_PRIORITY_CLASSES[name]:
        return f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return ""

