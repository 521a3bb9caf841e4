"""Probes, lifecycle hooks and environment variables of a container: defaults and validation.

These are the parts of a Container that carry their own small grammar (exactly one handler per
probe, exactly one source per ``valueFrom``, downward-API field paths), split out of
:mod:`apiserver.registry.core.containers` to keep each file readable. Messages and paths follow
Kubernetes' ``pkg/apis/core/validation``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiserver.registry.core.common import (
    as_dict,
    as_str,
    dicts,
    dns_subdomain,
    is_int,
    nonnegative,
    one_of,
    port_num_or_name,
    qualified_name,
    quantity_errors,
)
from machinery import validation
from machinery.errors import FieldError, forbidden, invalid_value, not_supported, required

PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
ENV_FIELD_PATHS = sorted({
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
})
CONTAINER_RESOURCE_FIELDS = sorted({
    "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "requests.cpu", "requests.memory", "requests.ephemeral-storage",
})
NOT_FOR_INIT = "may not be set for init containers without restartPolicy=Always"


# --- defaults -----------------------------------------------------------------------------------


def default_probe(probe: Any) -> None:
    """SetDefaults_Probe plus its handler's defaults. Idempotent."""
    if not isinstance(probe, dict):
        return
    for name, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                        ("failureThreshold", 3)):
        if not probe.get(name):
            probe[name] = value
    default_handler(probe)


def default_handler(handler: Any) -> None:
    """SetDefaults_HTTPGetAction: path "/" and scheme HTTP."""
    http = as_dict(handler).get("httpGet")
    if isinstance(http, dict):
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"


def default_lifecycle(lifecycle: Any) -> None:
    for hook in ("postStart", "preStop"):
        default_handler(as_dict(lifecycle).get(hook))


def default_field_ref(source: Any) -> None:
    """SetDefaults_ObjectFieldSelector: fieldRef.apiVersion "v1"."""
    ref = as_dict(source).get("fieldRef")
    if isinstance(ref, dict) and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def default_env(env: Any) -> None:
    for _, var in dicts(env):
        default_field_ref(var.get("valueFrom"))


# --- handlers and probes ------------------------------------------------------------------------


def exactly_one(obj: dict[str, Any], kinds: tuple[str, ...], path: str, what: str,
                check: Callable[[str, dict[str, Any], str], list[FieldError]]) -> list[FieldError]:
    """Exactly one of ``kinds`` set in ``obj`` (a probe's handler, a volume's source), looked for in
    that order: the first one found is validated with ``check(kind, body, path)``, each later one is
    Forbidden (``may not specify more than 1 <what>``) and none at all is Required."""
    errs: list[FieldError] = []
    found = False
    for kind in kinds:
        if obj.get(kind) is None:
            continue
        if found:
            errs.append(forbidden(f"{path}.{kind}", f"may not specify more than 1 {what}"))
            continue
        found = True
        errs += check(kind, as_dict(obj.get(kind)), f"{path}.{kind}")
    if not found:
        errs.append(required(path, f"must specify a {what}"))
    return errs


def validate_handler(handler: dict[str, Any], kinds: tuple[str, ...], path: str,
                     grace_period: int | None = None) -> list[FieldError]:
    """Exactly one handler type; the first one found is validated, later ones are Forbidden."""
    return exactly_one(handler, kinds, path, "handler type",
                       lambda kind, body, at: _HANDLER_CHECKS[kind](body, at, grace_period))


def _exec(action: dict[str, Any], path: str, _grace: int | None) -> list[FieldError]:
    return [] if action.get("command") else [required(f"{path}.command")]


def _http_get(action: dict[str, Any], path: str, _grace: int | None) -> list[FieldError]:
    errs = [] if action.get("path") else [required(f"{path}.path")]
    errs += port_num_or_name(action.get("port"), f"{path}.port")
    errs += one_of(action.get("scheme"), f"{path}.scheme", ["HTTP", "HTTPS"])
    for _, header in dicts(action.get("httpHeaders")):
        name = as_str(header.get("name"))
        if not name or any(c in name for c in " \t\r\n:()<>@,;\\\"/[]?={}"):
            errs.append(invalid_value(f"{path}.httpHeaders", name, "a valid HTTP header must consist of "
                                      "alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used "
                                      "for validation is '[-A-Za-z0-9]+')"))
    return errs


def _tcp_socket(action: dict[str, Any], path: str, _grace: int | None) -> list[FieldError]:
    return port_num_or_name(action.get("port"), f"{path}.port")


def _grpc(action: dict[str, Any], path: str, _grace: int | None) -> list[FieldError]:
    port = action.get("port")
    return [invalid_value(f"{path}.port", port, m) for m in validation.is_valid_port_num(port)]


def _sleep(action: dict[str, Any], path: str, grace: int | None) -> list[FieldError]:
    seconds = action.get("seconds")
    limit = 30 if grace is None else grace
    if is_int(seconds) and not 0 <= seconds <= limit:
        return [invalid_value(f"{path}.seconds", seconds,
                              f"must be non-negative and less than terminationGracePeriodSeconds ({limit})")]
    return []


_HANDLER_CHECKS = {"exec": _exec, "httpGet": _http_get, "tcpSocket": _tcp_socket, "grpc": _grpc, "sleep": _sleep}


def validate_probe(probe: Any, path: str, kind: str) -> list[FieldError]:
    """``kind`` is liveness, readiness or startup: liveness/startup need successThreshold 1 and a
    positive probe-level grace period; readiness may not set one."""
    if not isinstance(probe, dict):
        return []
    errs = validate_handler(probe, PROBE_HANDLERS, path)
    for name in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs += nonnegative(probe.get(name), f"{path}.{name}")
    grace = probe.get("terminationGracePeriodSeconds")
    if kind == "readiness":
        if grace is not None:
            errs.append(invalid_value(f"{path}.terminationGracePeriodSeconds", grace,
                                      "must not be set for readinessProbes"))
    else:
        if is_int(grace) and grace <= 0:
            errs.append(invalid_value(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))
        threshold = probe.get("successThreshold")
        if is_int(threshold) and threshold != 1:
            errs.append(invalid_value(f"{path}.successThreshold", threshold, "must be 1"))
    return errs


def validate_lifecycle(lifecycle: Any, path: str, grace_period: int | None) -> list[FieldError]:
    errs: list[FieldError] = []
    for hook in ("postStart", "preStop"):
        handler = as_dict(lifecycle).get(hook)
        if isinstance(handler, dict):
            errs += validate_handler(handler, LIFECYCLE_HANDLERS, f"{path}.{hook}", grace_period)
    return errs


def validate_container_probes(ctr: dict[str, Any], path: str, sidecar: bool | None,
                              grace_period: int | None) -> list[FieldError]:
    """Probes and lifecycle of one container. ``sidecar`` is None for regular containers, True for
    restartable init containers and False for plain init containers (which may have neither)."""
    errs: list[FieldError] = []
    if sidecar is False:
        for name in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if ctr.get(name) is not None:
                errs.append(forbidden(f"{path}.{name}", NOT_FOR_INIT))
        return errs
    errs += validate_lifecycle(ctr.get("lifecycle"), f"{path}.lifecycle", grace_period)
    errs += validate_probe(ctr.get("livenessProbe"), f"{path}.livenessProbe", "liveness")
    errs += validate_probe(ctr.get("readinessProbe"), f"{path}.readinessProbe", "readiness")
    errs += validate_probe(ctr.get("startupProbe"), f"{path}.startupProbe", "startup")
    return errs


# --- environment --------------------------------------------------------------------------------


def validate_env(env: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in dicts(env):
        item = f"{path}[{i}]"
        name = var.get("name")
        if not name:
            errs.append(required(f"{item}.name"))
        errs += [invalid_value(f"{item}.name", name, m) for m in validation.is_env_var_name(as_str(name))]
        errs += _validate_value_from(var, f"{item}.valueFrom")
    return errs


def _validate_value_from(var: dict[str, Any], path: str) -> list[FieldError]:
    source = var.get("valueFrom")
    if not isinstance(source, dict):
        return []
    errs: list[FieldError] = []
    count = 0
    if isinstance(source.get("fieldRef"), dict):
        count += 1
        errs += validate_object_field_ref(source["fieldRef"], f"{path}.fieldRef", ENV_FIELD_PATHS)
    if isinstance(source.get("resourceFieldRef"), dict):
        count += 1
        errs += validate_resource_field_ref(source["resourceFieldRef"], f"{path}.resourceFieldRef")
    for kind in ("configMapKeyRef", "secretKeyRef"):
        if isinstance(source.get(kind), dict):
            count += 1
            errs += _validate_key_selector(source[kind], f"{path}.{kind}")
    if count == 0:
        errs.append(invalid_value(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                  "`configMapKeyRef` or `secretKeyRef`"))
    elif var.get("value"):
        errs.append(invalid_value(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(invalid_value(path, "", "may not have more than one field specified at a time"))
    return errs


def validate_object_field_ref(ref: dict[str, Any], path: str, supported: list[str]) -> list[FieldError]:
    """A downward-API ``fieldRef``: v1 field paths, or a subscripted label/annotation."""
    if not ref.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    field_path = as_str(ref.get("fieldPath"))
    if not field_path:
        return [required(f"{path}.fieldPath")]
    if ref.get("apiVersion") != "v1":
        return [invalid_value(f"{path}.fieldPath", field_path,
                              f'error converting fieldPath: unsupported version: {ref.get("apiVersion")}')]
    if field_path.endswith("']") and "['" in field_path:
        base, _, rest = field_path.partition("['")
        subscript = rest[:-2]
        if base == "metadata.annotations":
            return qualified_name(subscript.lower(), path)
        if base == "metadata.labels":
            return qualified_name(subscript, path)
        return [invalid_value(path, base, "does not support subscript")]
    if field_path not in supported:
        return [not_supported(f"{path}.fieldPath", field_path, supported)]
    return []


def validate_resource_field_ref(ref: dict[str, Any], path: str) -> list[FieldError]:
    resource = as_str(ref.get("resource"))
    errs: list[FieldError] = []
    if not resource:
        errs.append(required(f"{path}.resource"))
    elif resource not in CONTAINER_RESOURCE_FIELDS and not resource.split(".", 1)[-1].startswith("hugepages-"):
        errs.append(not_supported(f"{path}.resource", resource, CONTAINER_RESOURCE_FIELDS))
    if ref.get("divisor") is not None:
        errs += quantity_errors(ref["divisor"], f"{path}.divisor")
    return errs


def _validate_key_selector(selector: dict[str, Any], path: str) -> list[FieldError]:
    errs = dns_subdomain(as_str(selector.get("name")), f"{path}.name")
    key = selector.get("key")
    if not key:
        errs.append(required(f"{path}.key"))
    else:
        errs += [invalid_value(f"{path}.key", key, m) for m in validation.is_config_map_key(as_str(key))]
    return errs


def validate_env_from(env_from: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, source in dicts(env_from):
        item = f"{path}[{i}]"
        prefix = source.get("prefix")
        if prefix:
            errs += [invalid_value(f"{item}.prefix", prefix, m) for m in validation.is_env_var_name(as_str(prefix))]
        refs = [kind for kind in ("configMapRef", "secretRef") if isinstance(source.get(kind), dict)]
        for kind in refs:
            name = source[kind].get("name")
            if not name:
                errs.append(required(f"{item}.{kind}.name"))
            else:
                errs += dns_subdomain(name, f"{item}.{kind}.name")
        if not refs:
            errs.append(invalid_value(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            errs.append(invalid_value(path, "", "may not have more than one field specified at a time"))
    return errs
