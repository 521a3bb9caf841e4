"""Resource names and resource lists (``{"cpu": "500m", ...}``) as core/v1 validation checks them.

Containers' requests/limits, pod-level resources, node capacity, quotas and limit ranges all carry
resource lists; this module holds the rules they share: which names are standard, which are
extended (``example.com/gpu``, integers only, never overcommitted) and the requests ≤ limits rule
with Kubernetes' messages (``must be less than or equal to cpu limit of 1``).
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.core.common import (
    IS_NEGATIVE,
    as_dict,
    key_path,
    qualified_name,
    quantity,
    quantity_errors,
)
from machinery.errors import FieldError, forbidden, invalid_value, required
from machinery.quantity import Quantity

CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
HUGEPAGES_PREFIX = "hugepages-"
NOT_INTEGER = "must be an integer"


def is_hugepages(name: str) -> bool:
    return name.startswith(HUGEPAGES_PREFIX)


def is_native(name: str) -> bool:
    """Kubernetes' own names: unprefixed or under a ``kubernetes.io/`` domain."""
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    """A vendor resource (``example.com/gpu``): integral, requests must equal limits."""
    if is_native(name) or name.startswith("requests."):
        return False
    return not qualified_name("requests." + name, "")


def overcommit_allowed(name: str) -> bool:
    return is_native(name) and not is_hugepages(name)


def is_integer_resource(name: str) -> bool:
    return is_extended(name)


def validate_container_resource_name(name: str, path: str) -> list[FieldError]:
    """validateContainerResourceName: a qualified name; unprefixed ones must be container resources."""
    errs = qualified_name(name, path)
    if "/" not in name:
        if name not in CONTAINER_RESOURCES and not is_hugepages(name):
            errs.append(invalid_value(path, name, "must be a standard resource for containers"))
    elif not is_native(name) and not is_extended(name):
        errs.append(invalid_value(path, name, "doesn't follow extended resource name standard"))
    return errs


def validate_quantity_value(name: str, value: Any, path: str) -> list[FieldError]:
    """ValidateResourceQuantityValue: parses, is not negative, is whole for integer resources."""
    parsed = quantity(value)
    if parsed is None:
        return quantity_errors(value, path)
    errs = []
    if parsed.sign() < 0:
        errs.append(invalid_value(path, str(parsed), IS_NEGATIVE))
    if is_integer_resource(name) and parsed.milli_value() % 1000:
        errs.append(invalid_value(path, str(parsed), NOT_INTEGER))
    return errs


def validate_resource_requirements(resources: Any, path: str) -> list[FieldError]:
    """A container's (or the pod's) ``resources``: names, values, and requests against limits."""
    res = as_dict(resources)
    limits, requests = as_dict(res.get("limits")), as_dict(res.get("requests"))
    lim_path, req_path = f"{path}.limits", f"{path}.requests"
    errs: list[FieldError] = []
    hugepages_limited = False
    plain_limited = False
    for name, value in limits.items():
        field_path = key_path(lim_path, name)
        errs += validate_container_resource_name(name, field_path)
        errs += validate_quantity_value(name, value, field_path)
        if is_hugepages(name):
            hugepages_limited = True
        elif name in ("cpu", "memory"):
            plain_limited = True
    for name, value in requests.items():
        field_path = key_path(req_path, name)
        errs += validate_container_resource_name(name, field_path)
        errs += validate_quantity_value(name, value, field_path)
        if name in ("cpu", "memory"):
            plain_limited = True
        errs += _request_against_limit(name, quantity(value), limits, lim_path, req_path)
    if hugepages_limited and not plain_limited:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    return errs


def _request_against_limit(
    name: str, request: Quantity | None, limits: dict[str, Any], lim_path: str, req_path: str
) -> list[FieldError]:
    if request is None:
        return []
    if name not in limits:
        if not overcommit_allowed(name):
            return [required(lim_path, "Limit must be set for non overcommitable resources")]
        return []
    limit = quantity(limits[name])
    if limit is None:
        return []
    if not overcommit_allowed(name) and request != limit:
        return [invalid_value(req_path, str(request), f"must be equal to {name} limit of {limit}")]
    if request > limit:
        return [invalid_value(req_path, str(request), f"must be less than or equal to {name} limit of {limit}")]
    return []


def default_requests_from_limits(resources: Any) -> None:
    """SetDefaults_Pod: a resource with a limit but no request gets request = limit. Idempotent."""
    if not isinstance(resources, dict):
        return
    limits = resources.get("limits")
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    for name, value in limits.items():
        requests.setdefault(name, value)
