"""A container's environment, built the way the Kubernetes v1.35 kubelet builds it (makeEnvironmentVariables).

Order of definition, later ones overriding earlier ones of the same name:

1. service links: ``<SVC>_SERVICE_HOST``/``_SERVICE_PORT``/``_SERVICE_PORT_<PORT>`` and the docker-link variables
   for every Service with a cluster IP in the pod's namespace (unless ``spec.enableServiceLinks`` is false), and
   always for the ``kubernetes`` Service of the ``default`` namespace;
2. ``envFrom`` in order (ConfigMap ``data`` / Secret ``data``, with ``prefix``);
3. ``env`` in order: ``value`` with ``$(VAR)`` expanded against what is defined so far, or ``valueFrom``
   (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef).

A reference that cannot be resolved raises :class:`ContainerConfigError` with Kubernetes' message; the pod shows
it as the waiting reason ``CreateContainerConfigError``. The downward-API helpers here (``pod_field_value``,
``metadata_field_value``, ``container_resource_value``) are shared with downwardAPI volumes.

Simplifications: envFrom keys are checked with the relaxed (v1.34+ GA) name rule — printable ASCII except ``=`` —
and skipped ones are reported through ``on_warning`` rather than an event recorder of our own; ``status.hostIPs``
is the single ``host_ip``; pod IPs are not re-sorted by the node's IP family preference; ``fileKeyRef`` (alpha)
is rejected.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelet.objects import ObjectSource
from machinery.quantity import Quantity, QuantityError, parse_quantity

Warn = Callable[[str, str], None]  # (reason, message), e.g. for a Warning event on the pod
DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")  # unset limits read as node allocatable


class ContainerConfigError(Exception):
    """The container cannot be configured; ``str(err)`` is the CreateContainerConfigError message."""


# --- $(VAR) expansion -------------------------------------------------------------------------------------------


def expand_with(text: str, lookup: Callable[[str], str]) -> str:
    """Kubernetes' expansion: ``$(NAME)`` → ``lookup(NAME)``, ``$$`` → ``$``, anything else kept as written."""
    out: list[str] = []
    checkpoint, cursor, end = 0, 0, len(text)
    while cursor < end:
        if text[cursor] == "$" and cursor + 1 < end:
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":  # escaped operator
                out.append("$")
                cursor += 1
            elif following == "(":
                close = text.find(")", cursor + 2)
                if close < 0:  # incomplete reference: keep "$(" and go on after it
                    out.append("$(")
                    cursor += 1
                else:
                    out.append(lookup(text[cursor + 2:close]))
                    cursor = close
            else:  # a lone operator: keep it and the character after it
                out.append("$" + following)
                cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def expand(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` expansion against ``env``; ``$$`` escapes; an unknown ``$(X)`` is kept literally."""
    return expand_with(text, lambda name: env.get(name, f"$({name})"))


# --- service links ----------------------------------------------------------------------------------------------


def _env_name(text: str) -> str:
    return text.upper().replace("-", "_")


def _has_cluster_ip(service: Mapping[str, Any]) -> bool:
    return ((service.get("spec") or {}).get("clusterIP") or "None") != "None"


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_variables(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The variables one Service contributes (envvars.FromServices); none without a cluster IP."""
    if not _has_cluster_ip(service):
        return []
    spec = service.get("spec") or {}
    prefix = _env_name((service.get("metadata") or {}).get("name") or "")
    ip, ports = spec["clusterIP"], spec.get("ports") or []
    out = [(f"{prefix}_SERVICE_HOST", ip)]
    if ports:
        out.append((f"{prefix}_SERVICE_PORT", str(ports[0].get("port"))))
    out += [(f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}", str(p.get("port"))) for p in ports if p.get("name")]
    for index, port in enumerate(ports):
        number, protocol = port.get("port"), (port.get("protocol") or "TCP")
        url = f"{protocol.lower()}://{_host_port(ip, number)}"
        if index == 0:  # docker special-cases the first port
            out.append((f"{prefix}_PORT", url))
        port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
        out += [(port_prefix, url), (f"{port_prefix}_PROTO", protocol.lower()), (f"{port_prefix}_PORT", str(number)),
                (f"{port_prefix}_ADDR", ip)]
    return out


async def service_environment(pod: Mapping[str, Any], source: ObjectSource) -> dict[str, str]:
    """Service-link variables for ``pod`` (the default/kubernetes Service even when links are disabled)."""
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    chosen: dict[str, Mapping[str, Any]] = {}
    try:
        for service in await source.services("default"):
            if (service.get("metadata") or {}).get("name") == "kubernetes" and _has_cluster_ip(service):
                chosen["kubernetes"] = service
        if links:  # the pod's own namespace wins over the master service of the same name
            for service in await source.services(namespace):
                if _has_cluster_ip(service):
                    chosen[(service.get("metadata") or {}).get("name") or ""] = service
    except Exception as err:
        raise ContainerConfigError(f"failed to list services for environment variables: {err}") from None
    return {name: value for key in sorted(chosen) for name, value in service_variables(chosen[key])}


# --- downward API -----------------------------------------------------------------------------------------------


def _go_quote(text: str) -> str:
    """Go's %q for a string: double-quoted, backslash escapes for quotes and non-printable characters."""
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def format_map(values: Mapping[str, str]) -> str:
    """Labels/annotations as the downward API renders them: ``key="value"`` lines, sorted by key."""
    return "\n".join(f"{key}={_go_quote(values[key])}" for key in sorted(values))


def metadata_field_value(pod: Mapping[str, Any], field_path: str) -> str:
    """fieldpath.ExtractFieldPathAsString: the metadata fields a downwardAPI volume or env var may read."""
    meta = pod.get("metadata") or {}
    if field_path.endswith("']") and "['" in field_path:
        path, _, subscript = field_path[:-2].partition("['")
        if path in ("metadata.labels", "metadata.annotations") and subscript:
            return (meta.get(path.removeprefix("metadata.")) or {}).get(subscript, "")
        raise ContainerConfigError(f'fieldPath "{field_path}" does not support subscript')
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(field_path.removeprefix("metadata.")) or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return meta.get(field_path.removeprefix("metadata.")) or ""
    raise ContainerConfigError(f"unsupported fieldPath: {field_path}")


def pod_field_value(pod: Mapping[str, Any], selector: Mapping[str, Any], *, host_ip: str, pod_ip: str,
                    pod_ips: list[str]) -> str:
    """An env var's ``valueFrom.fieldRef`` (podFieldSelectorRuntimeValue)."""
    api_version, field_path = selector.get("apiVersion") or "v1", selector.get("fieldPath") or ""
    if api_version != "v1":
        raise ContainerConfigError(f"unsupported pod version: {api_version}")
    ips = list(pod_ips) or ([pod_ip] if pod_ip else [])
    spec = pod.get("spec") or {}
    special = {"spec.nodeName": lambda: spec.get("nodeName") or "",
               "spec.serviceAccountName": lambda: spec.get("serviceAccountName") or "",
               "status.hostIP": lambda: host_ip, "status.hostIPs": lambda: host_ip,
               "status.podIP": lambda: ips[0] if ips else "", "status.podIPs": lambda: ",".join(ips)}
    if field_path in special:
        return special[field_path]()
    return metadata_field_value(pod, field_path)


def _quantity(value: Any, what: str) -> Quantity:
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError) as err:
        raise ContainerConfigError(f"invalid quantity {value!r} for {what}: {err}") from None


def container_resource_value(selector: Mapping[str, Any], container: Mapping[str, Any],
                             node_allocatable: Mapping[str, str]) -> str:
    """``resourceFieldRef`` for ``container``: unset cpu/memory/ephemeral-storage limits read as node allocatable;
    cpu is rounded up to whole divisors by milli-units (250m with divisor 1 → "1"), the rest by units."""
    resource = selector.get("resource") or ""
    divisor = _quantity(selector.get("divisor") or "1", "divisor")
    if divisor.is_zero():
        divisor = parse_quantity("1")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (name in DEFAULTED_LIMITS or name.startswith("hugepages-")):
        raise ContainerConfigError(f"unsupported container resource : {resource}")
    values = dict((container.get("resources") or {}).get(kind) or {})
    if kind == "limits":
        for defaulted in DEFAULTED_LIMITS:
            if defaulted not in values and defaulted in node_allocatable:
                values[defaulted] = node_allocatable[defaulted]
    amount = _quantity(values.get(name, "0"), resource)
    if name == "cpu":
        numerator, denominator = amount.milli_value(), divisor.milli_value()
    else:
        numerator, denominator = amount.value(), divisor.value()
    return str(-(-numerator // max(denominator, 1)))


# --- the environment ------------------------------------------------------------------------------------------


def is_env_var_name(name: str) -> bool:
    """The relaxed rule (RelaxedEnvironmentVariableValidation, GA in v1.34): printable ASCII, no '='."""
    return bool(name) and all(" " <= char <= "~" and char != "=" for char in name)


def _decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value or "", validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            raise ContainerConfigError(f"secret key {key} is not valid base64") from None
    return out


@dataclass
class _Objects:
    """The ConfigMaps and Secrets one container's environment reads, each fetched once."""

    source: ObjectSource
    namespace: str
    seen: dict[tuple[str, str], Mapping[str, Any] | None] = field(default_factory=dict)

    async def get(self, kind: str, name: str) -> Mapping[str, Any] | None:
        key = (kind, name)
        if key not in self.seen:
            read = self.source.config_map if kind == "configmap" else self.source.secret
            try:
                self.seen[key] = await read(self.namespace, name)
            except Exception as err:
                raise ContainerConfigError(f"couldn't get {kind} {self.namespace}/{name}: {err}") from None
        return self.seen[key]

    async def data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """The object's string data; None when it is missing and optional."""
        obj = await self.get(kind, name)
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind} "{name}" not found')
        return dict(obj.get("data") or {}) if kind == "configmap" else _decode_secret(obj)


async def _add_env_from(env: dict[str, str], item: Mapping[str, Any], objects: _Objects, warn: Warn | None) -> None:
    kind, ref = ("configmap", item["configMapRef"]) if item.get("configMapRef") else ("secret", item.get("secretRef"))
    if not ref:
        return
    name, prefix = ref.get("name") or "", item.get("prefix") or ""
    data = await objects.data(kind, name, bool(ref.get("optional")))
    invalid = []
    for key, value in (data or {}).items():
        if is_env_var_name(prefix + key):
            env[prefix + key] = value
        else:
            invalid.append(prefix + key)
    if invalid and warn is not None:
        warn("InvalidEnvironmentVariableNames", f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {kind} "
             f"{objects.namespace}/{name} were skipped since they are considered invalid environment variable names.")


async def _key_ref_value(kind: str, ref: Mapping[str, Any], objects: _Objects) -> str | None:
    name, key, optional = ref.get("name") or "", ref.get("key") or "", bool(ref.get("optional"))
    data = await objects.data(kind, name, optional)
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        label = "ConfigMap" if kind == "configmap" else "Secret"
        raise ContainerConfigError(f"couldn't find key {key} in {label} {objects.namespace}/{name}")
    return data[key]


async def make_environment(pod: dict, container: dict, source: ObjectSource, *, host_ip: str, pod_ip: str,
                           pod_ips: list[str], node_allocatable: Mapping[str, str],
                           on_warning: Warn | None = None) -> list[tuple[str, str]]:
    """The (name, value) pairs of ``container``'s environment. Raises :class:`ContainerConfigError`.

    Must not mutate ``pod`` or ``container``. ``on_warning(reason, message)`` hears about skipped envFrom keys.
    """
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    env = await service_environment(pod, source)
    objects = _Objects(source, namespace)
    for item in container.get("envFrom") or []:
        await _add_env_from(env, item, objects, on_warning)
    for var in container.get("env") or []:
        name, value_from = var.get("name") or "", var.get("valueFrom") or {}
        value: str | None = var.get("value") or ""
        if value:
            value = expand(value, env)
        elif value_from.get("fieldRef"):
            value = pod_field_value(pod, value_from["fieldRef"], host_ip=host_ip, pod_ip=pod_ip, pod_ips=pod_ips)
        elif value_from.get("resourceFieldRef"):
            value = container_resource_value(value_from["resourceFieldRef"], container, node_allocatable)
        elif value_from.get("configMapKeyRef"):
            value = await _key_ref_value("configmap", value_from["configMapKeyRef"], objects)
        elif value_from.get("secretKeyRef"):
            value = await _key_ref_value("secret", value_from["secretKeyRef"], objects)
        elif value_from.get("fileKeyRef"):
            raise ContainerConfigError(f"env {name}: valueFrom.fileKeyRef is not supported by kubemini")
        if value is not None:  # None: an optional reference that is missing — the variable is skipped
            env[name] = value
    return list(env.items())
