"""Query parameters of resource requests, parsed once and validated with clear 400s."""

from __future__ import annotations

from starlette.datastructures import QueryParams

from apiserver.registry.options import DeleteOptions, ListOptions, WriteOptions
from apiserver.server import codec
from apiserver.storage.store import Preconditions
from machinery import errors as api
from machinery.fields import parse_field_selector
from machinery.labels import SelectorError, parse_selector

FIELD_VALIDATION = ("Strict", "Warn", "Ignore")


def truthy(params: QueryParams, name: str) -> bool:
    return params.get(name, "").lower() in ("true", "1")


def optional_bool(params: QueryParams, name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return value.lower() in ("true", "1")


def int_param(params: QueryParams, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise api.bad_request(f'invalid value for {name}: "{value}" is not an integer') from None


def list_options(params: QueryParams) -> ListOptions:
    try:
        labels = parse_selector(params["labelSelector"]) if params.get("labelSelector") else None
    except SelectorError as exc:
        raise api.bad_request(str(exc)) from None
    try:
        fields = parse_field_selector(params["fieldSelector"]) if params.get("fieldSelector") else None
    except SelectorError as exc:
        raise api.bad_request(str(exc)) from None
    limit = int_param(params, "limit", 0) or 0
    if limit < 0:
        raise api.bad_request("limit must be a non-negative integer")
    return ListOptions(
        label_selector=labels,
        field_selector=fields,
        limit=limit,
        continue_token=params.get("continue", ""),
        resource_version=params.get("resourceVersion", ""),
        resource_version_match=params.get("resourceVersionMatch", ""),
    )


def write_options(params: QueryParams, *, default_validation: str = "Warn") -> WriteOptions:
    dry_run = params.getlist("dryRun")
    for value in dry_run:
        if value != "All":
            raise api.bad_request(f'Invalid dryRun value: "{value}": supported values: "All"')
    validation = params.get("fieldValidation") or default_validation
    if validation not in FIELD_VALIDATION:
        raise api.bad_request(
            f'fieldValidation: Unsupported value: "{validation}": supported values: "Ignore", "Strict", "Warn"')
    manager = params.get("fieldManager", "")
    if len(manager) > 128:
        raise api.bad_request("fieldManager: Too long: must have at most 128 bytes")
    return WriteOptions(dry_run=bool(dry_run), field_validation=validation, field_manager=manager)


def delete_options(params: QueryParams, body: dict | None) -> DeleteOptions:
    body = codec.require_objects(body or {}, "DeleteOptions", "preconditions")
    if body and body.get("kind") not in (None, "DeleteOptions"):
        raise api.bad_request(f"the kind in the data ({body.get('kind')}) does not match DeleteOptions")
    grace = body.get("gracePeriodSeconds")
    if grace is None:
        grace = int_param(params, "gracePeriodSeconds")
    policy = body.get("propagationPolicy") or params.get("propagationPolicy") or None
    orphan = body.get("orphanDependents")
    if orphan is None and params.get("orphanDependents"):
        orphan = truthy(params, "orphanDependents")
    if orphan is not None:
        if policy:
            raise api.invalid("DeleteOptions", "", [api.invalid_value(
                "propagationPolicy", policy, "orphanDependents and deletionPropagation cannot be both set")])
        policy = "Orphan" if orphan else "Background"
    pre = body.get("preconditions") or {}
    preconditions = None
    if pre.get("uid") or pre.get("resourceVersion"):
        preconditions = Preconditions(uid=pre.get("uid"), resource_version=pre.get("resourceVersion"))
    body_dry_run = body.get("dryRun") or []
    if not isinstance(body_dry_run, list):
        raise api.bad_request("DeleteOptions cannot be decoded: \"dryRun\" must be a list of strings")
    dry_run = list(body_dry_run) + params.getlist("dryRun")
    for value in dry_run:
        if value != "All":
            raise api.bad_request(f'Invalid dryRun value: "{value}": supported values: "All"')
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise api.bad_request("gracePeriodSeconds must be an integer")
    if policy is not None and not isinstance(policy, str):
        raise api.bad_request("propagationPolicy must be a string")
    return DeleteOptions(grace_period_seconds=grace, propagation_policy=policy,
                         preconditions=preconditions, dry_run=bool(dry_run), orphan_dependents=orphan)
