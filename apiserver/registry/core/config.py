"""Strategies for the configuration kinds: ConfigMap, Secret, ServiceAccount, LimitRange, ResourceQuota.

- ConfigMap: data/binaryData keys are config keys, no key in both, 1 MiB in total; ``immutable``.
- Secret: ``stringData`` folds into ``data`` (base64) as v1 conversion does; type defaults to
  Opaque and never changes; keys and values checked, type-specific required keys; ``immutable``.
- ServiceAccount: nothing beyond object metadata.
- LimitRange: per-type defaults (default ← max, defaultRequest ← default or min) and the ordering
  min ≤ defaultRequest ≤ default ≤ max.
- ResourceQuota: resource names and non-negative quantities in ``spec.hard`` (and status), scopes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core.common import as_dict, as_str, dicts, key_path, meta_of, quantity, spec_of, status_of
from apiserver.registry.core.resourcelist import validate_quantity_value
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError, duplicate, forbidden, invalid_value, not_supported, required, too_long
from machinery.validation import is_config_map_key, is_qualified_name

MAX_SIZE = 1024 * 1024
IMMUTABLE_SET = "field is immutable when `immutable` is set"
REDACTED = "<secret contents redacted>"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _key_errors(keys: Any, path: str) -> list[FieldError]:
    return [invalid_value(key_path(path, key), key, msg) for key in keys for msg in is_config_map_key(key)]


def _immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs = [] if new.get("immutable") is True else [forbidden("immutable", IMMUTABLE_SET)]
    return errs + [forbidden(name, IMMUTABLE_SET) for name in fields
                   if as_dict(new.get(name)) != as_dict(old.get(name))]


@register("", "configmaps")
class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
        errs = _key_errors(data, "data")
        errs += [invalid_value(key_path("data", key), key, "duplicate of key present in binaryData")
                 for key in data if key in binary]
        errs += _key_errors(binary, "binaryData")
        size = sum(len(as_str(v).encode()) for v in data.values())
        size += sum(len(_decoded(v) or b"") for v in binary.values())
        if size > MAX_SIZE:
            errs.append(too_long("", MAX_SIZE))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _immutable_data(new, old, ("data", "binaryData")) + self.validate(new)


def _decoded(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


@register("", "secrets")
class SecretStrategy(Strategy):
    selectable_fields = ("type",)

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            data = obj.get("data")
            if not isinstance(data, dict):
                data = obj["data"] = {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(as_str(value).encode()).decode()

    def validate(self, obj: Obj) -> list[FieldError]:
        data = as_dict(obj.get("data"))
        errs = _key_errors(data, "data")
        size = 0
        for key, value in data.items():
            raw = _decoded(value)
            if raw is None:
                errs.append(invalid_value(key_path("data", key), REDACTED, "illegal base64 data"))
            size += len(raw or b"")
        if size > MAX_SIZE:
            errs.append(too_long("data", MAX_SIZE))
        return errs + _type_rules(as_str(obj.get("type")), data, as_dict(meta_of(obj).get("annotations")))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = []
        if (new.get("type") or "") != (old.get("type") or ""):
            errs.append(invalid_value("type", new.get("type") or "", "field is immutable"))
        return errs + _immutable_data(new, old, ("data",)) + self.validate(new)


def _type_rules(kind: str, data: dict[str, Any], annotations: dict[str, Any]) -> list[FieldError]:
    if kind == "kubernetes.io/service-account-token":
        if not annotations.get(SA_NAME_ANNOTATION):
            return [required(key_path("metadata.annotations", SA_NAME_ANNOTATION))]
        return []
    if kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
        return []
    if kind == "kubernetes.io/ssh-auth":
        return [] if _decoded(data.get("ssh-privatekey")) else [required("data[ssh-privatekey]")]
    errs = [required(key_path("data", key)) for key in SECRET_REQUIRED_KEYS.get(kind, ()) if key not in data]
    if kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson") and not errs:
        key = SECRET_REQUIRED_KEYS[kind][0]
        try:
            if not isinstance(json.loads(_decoded(data[key]) or b""), dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            errs.append(invalid_value(key_path("data", key), REDACTED, str(err)))
    return errs


@register("", "serviceaccounts")
class ServiceAccountStrategy(Strategy):
    """Nothing beyond object metadata; token secrets are out of scope."""


# --- LimitRange ----------------------------------------------------------------------------------


@register("", "limitranges")
class LimitRangeStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        for _, item in dicts(spec_of(obj).get("limits")):
            if item.get("type") != "Container":
                continue
            default = dict(as_dict(item.get("default")))
            request = dict(as_dict(item.get("defaultRequest")))
            for source, target in ((item.get("max"), default), (default, request), (item.get("min"), request)):
                for name, value in as_dict(source).items():
                    target.setdefault(name, value)
            if default:
                item["default"] = default
            if request:
                item["defaultRequest"] = request

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        seen: set[str] = set()
        for i, item in dicts(spec_of(obj).get("limits")):
            path = f"spec.limits[{i}]"
            kind = as_str(item.get("type"))
            errs += [invalid_value(f"{path}.type", kind, m) for m in is_qualified_name(kind)]
            if kind in seen:
                errs.append(duplicate(f"{path}.type", kind))
            seen.add(kind)
            if kind == "Pod":
                for name in ("default", "defaultRequest"):
                    if as_dict(item.get(name)):
                        errs.append(forbidden(f"{path}.{name}", "may not be specified when `type` is 'Pod'"))
            errs += _limit_item(item, path)
        return errs


def _limit_item(item: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    lists = {name: as_dict(item.get(name)) for name in ("min", "max", "default", "defaultRequest",
                                                        "maxLimitRequestRatio")}
    for field, values in lists.items():
        for name, value in values.items():
            errs += validate_quantity_value(name, value, key_path(f"{path}.{field}", name))
    ordered = (("min", "max", "min value {a} is greater than max value {b}"),
               ("defaultRequest", "default", "default request value {a} is greater than default limit value {b}"),
               ("default", "max", "default value {a} is greater than max value {b}"),
               ("defaultRequest", "max", "default request value {a} is greater than max value {b}"),
               ("min", "defaultRequest", "min value {a} is greater than default request value {b}"))
    for low, high, message in ordered:
        for name in lists[low].keys() & lists[high].keys():
            a, b = quantity(lists[low][name]), quantity(lists[high][name])
            if a is not None and b is not None and a > b:
                errs.append(invalid_value(key_path(f"{path}.{low}", name), str(a), message.format(a=a, b=b)))
    for name, value in lists["maxLimitRequestRatio"].items():
        ratio = quantity(value)
        if ratio is not None and ratio.amount < 1:
            errs.append(invalid_value(key_path(f"{path}.maxLimitRequestRatio", name), str(ratio),
                                      f"ratio {ratio} is less than 1"))
    return errs


# --- ResourceQuota --------------------------------------------------------------------------------

QUOTA_RESOURCES = frozenset({
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers", "cpu", "memory",
    "ephemeral-storage", "storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
})
QUOTA_SCOPES = ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating", "PriorityClass",
                "Terminating", "VolumeAttributesClass"]


def _quota_list(values: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for name, value in as_dict(values).items():
        item = key_path(path, name)
        errs += [invalid_value(item, name, m) for m in is_qualified_name(name)]
        if "/" not in name and name not in QUOTA_RESOURCES and not name.split(".")[-1].startswith("hugepages-"):
            errs.append(invalid_value(item, name, "must be a standard resource for quota"))
        errs += validate_quantity_value(name, value, item)
    return errs


@register("", "resourcequotas")
class ResourceQuotaStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        spec = spec_of(obj)
        errs = _quota_list(spec.get("hard"), "spec.hard")
        for i, scope in enumerate(spec.get("scopes") or []):
            if scope not in QUOTA_SCOPES:
                errs.append(not_supported(f"spec.scopes[{i}]", scope, QUOTA_SCOPES))
        for i, expr in dicts(as_dict(spec.get("scopeSelector")).get("matchExpressions")):
            if expr.get("scopeName") not in QUOTA_SCOPES:
                errs.append(not_supported(f"spec.scopeSelector.matchExpressions[{i}].scopeName",
                                          expr.get("scopeName"), QUOTA_SCOPES))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = status_of(new)
        return _quota_list(status.get("hard"), "status.hard") + _quota_list(status.get("used"), "status.used")
