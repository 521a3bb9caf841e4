"""Schema checks on request bodies: types, formats and required fields; unknown and duplicate fields.

Kubernetes decodes every write into typed structs, which rejects wrong types, drops fields it does not
know and, under ``fieldValidation=Strict``/``Warn``, reports those unknown fields and any duplicated JSON
keys. We keep objects as dicts, so the same checks run against the v1.35 schemas (and CRD schemas
registered at run time) from :mod:`apiserver.schema.definitions`:

- :func:`validate_object` -> ``FieldError``s (type/format/enum/required/bounds) with Kubernetes field
  paths, through a jsonschema-rs validator compiled once per kind (this is on every write);
- :func:`unknown_fields` / :func:`prune_unknown` -> paths of undeclared fields / delete them in place
  (Kubernetes prunes them in every mode);
- :func:`duplicate_fields` -> paths of keys repeated in one JSON object of the raw body.

The server turns the last two into ``strict decoding error: unknown field "x", duplicate field "y"``
(Strict, 400), one ``Warning`` header each (Warn) or nothing (Ignore); :func:`strict_problems` and
:func:`strict_decoding_error` produce exactly those texts.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import orjson

from apiserver.schema.definitions import (
    DEFS_REF_PREFIX,
    GVK,
    GVK_EXTENSION,
    INT_OR_STRING,
    SchemaNode,
    SchemaRegistry,
    default_registry,
)
from apiserver.schema.walk import holds_subschemas, map_subschemas
from machinery import errors
from machinery.errors import FieldError, StatusError

# --- validation ---------------------------------------------------------------------------------

_Kind = jsonschema_rs.ValidationErrorKind

_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_CHECKED_FORMATS = frozenset({"date-time", "date", "byte"})
_DROPPED = frozenset({"description", "default", "example", "externalDocs", "nullable", "format"})


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _types_of(schema: dict[str, Any]) -> list[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return list(kind) if isinstance(kind, list) else [kind]


def _scalar_union(branches: list[Any]) -> list[str] | None:
    """``oneOf: [{type: A}, {type: B}]`` (IntOrString, Quantity) as one type list, else None."""
    types: list[str] = []
    for branch in branches:
        if not isinstance(branch, dict) or set(branch) != {"type"}:
            return None
        types.extend(t for t in _types_of(branch) or () if t not in types)
    return types


def _for_validation(schema: Any, *, drop_type_enums: bool = False) -> Any:
    """Rewrite one schema from the definitions' dialect into what jsonschema-rs should enforce.

    - ``nullable: true`` (CRDs) and ``type: [T, "null"]`` both accept null, and null passes ``enum``;
    - a oneOf of bare types becomes a type list (null matches both halves of IntOrString's oneOf);
    - ``x-kubernetes-int-or-string`` accepts integers and strings;
    - int32/int64 get their bounds; only date-time, date and byte formats are checked (CRD formats such
      as ``duration`` mean Go durations, not ISO 8601);
    - descriptions and extensions are dropped; ``enum`` on apiVersion/kind of top-level kinds is dropped
      (the server checks those against the URL with better messages).
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    types = _types_of(schema)
    one_of = schema.get("oneOf")
    if one_of and types is None:
        union = _scalar_union(one_of)
        if union is not None:
            types = union
            one_of = None
    if schema.get(INT_OR_STRING) is True:
        types = ["integer", "string", *(["null"] if "null" in (types or ()) else [])]
    if types is not None:
        if schema.get("nullable") is True and "null" not in types:
            types.append("null")
        out["type"] = types[0] if len(types) == 1 else types
    nullable = types is not None and "null" in types
    for key, value in schema.items():
        if key in _DROPPED or key == "type" or key.startswith("x-kubernetes-"):
            continue
        if key == "oneOf" and one_of is None:
            continue  # folded into the type list above
        if holds_subschemas(key):
            out[key] = map_subschemas(key, value, _for_validation, drop_type_enums=drop_type_enums)
        elif key == "enum":
            out[key] = [*value, None] if nullable and None not in value else list(value)
        else:
            out[key] = value
    fmt = schema.get("format")
    if fmt in _INT_BOUNDS and types and "integer" in types:
        low, high = _INT_BOUNDS[fmt]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    elif fmt in _CHECKED_FORMATS:
        out["format"] = fmt
    return out


def _compile(registry: SchemaRegistry, name: str) -> Any:
    defs = {
        n: _for_validation(registry.definition(n), drop_type_enums=GVK_EXTENSION in registry.definition(n))
        for n in registry.reachable([name])
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": defs,
        "$ref": DEFS_REF_PREFIX + name,
    }
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, formats={"byte": _is_base64})


def _validator(registry: SchemaRegistry, name: str) -> Any:
    validators = registry.cache("validators")
    validator = validators.get(name)
    if validator is None:
        validator = validators[name] = _compile(registry, name)
    return validator


def validate_object(
    obj: dict[str, Any], gvk: GVK, *, registry: SchemaRegistry | None = None
) -> list[FieldError]:
    """Type, format, enum, bounds and required-field errors of ``obj`` against ``gvk``'s schema.

    Returns ``[]`` for valid objects and for kinds without a schema. Must not mutate ``obj``.
    """
    registry = registry or default_registry()
    name = registry.name_for(gvk)
    if name is None:
        return []
    validator = _validator(registry, name)
    if validator.is_valid(obj):
        return []
    root = registry.node(name)
    return [_field_error(error, root) for error in validator.iter_errors(obj)]


_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def field_path(root: SchemaNode | None, instance_path: list[str | int]) -> str:
    """Kubernetes' rendering of a location: ``spec.containers[0].image``; map keys as ``[key]``."""
    out: list[str] = []
    node = root
    for step in instance_path:
        if isinstance(step, int):
            out.append(f"[{step}]")
            node = node.items() if node is not None else None
            continue
        child = node.declared(step) if node is not None else None
        if child is None and node is not None and node.is_map:
            out.append(f"[{step}]")
            node = node.values()
            continue
        out.append(f".{step}" if out else step)
        node = child
    return "".join(out)


# Bounds and patterns: an Invalid value error, "<path> in body should <rule>".
_INVALID_VALUE_RULES: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (_Kind.Maximum, lambda kind: f"be less than or equal to {kind.limit}"),
    (_Kind.Minimum, lambda kind: f"be greater than or equal to {kind.limit}"),
    (_Kind.ExclusiveMaximum, lambda kind: f"be less than {kind.limit}"),
    (_Kind.ExclusiveMinimum, lambda kind: f"be greater than {kind.limit}"),
    (_Kind.MinLength, lambda kind: f"be at least {kind.limit} chars long"),
    (_Kind.Pattern, lambda kind: f"match '{kind.pattern}'"),
)


def _field_error(error: Any, root: SchemaNode | None) -> FieldError:
    kind = error.kind
    path = field_path(root, list(error.instance_path))
    value = error.instance
    shown = value if isinstance(value, (str, int, float, bool)) or value is None else _json_type(value)
    where = path or "body"
    if isinstance(kind, _Kind.Required):
        child = f"{path}.{kind.property}" if path else kind.property
        return errors.required(child)
    if isinstance(kind, _Kind.Type):
        expected = " or ".join(t for t in kind.types if t != "null") or "null"
        actual = _json_type(value)
        detail = f'{where} in body must be of type {expected}: "{actual}"'
        return FieldError(errors.TYPE_INVALID, path, detail, actual)
    if isinstance(kind, _Kind.Enum):
        return errors.not_supported(path, shown, [_enum_text(o) for o in kind.options if o is not None])
    if isinstance(kind, _Kind.Format):
        return errors.invalid_value(path, shown, f'{where} in body must be of type {kind.format}: "{value}"')
    for kind_type, rule in _INVALID_VALUE_RULES:
        if isinstance(kind, kind_type):
            return errors.invalid_value(path, shown, f"{where} in body should {rule(kind)}")
    if isinstance(kind, _Kind.MaxLength):
        return errors.too_long(path, kind.limit)
    if isinstance(kind, _Kind.MaxItems):
        return FieldError(errors.TOO_MANY, path, f"must have at most {kind.limit} items")
    if isinstance(kind, _Kind.MinItems):
        return FieldError(errors.INVALID, path, f"{where} in body should have at least {kind.limit} items")
    if isinstance(kind, _Kind.UniqueItems):
        return FieldError(errors.DUPLICATE, path, f"{where} in body shouldn't contain duplicates")
    return FieldError(errors.INVALID, path, error.message)


def _enum_text(option: Any) -> str:
    return option if isinstance(option, str) else orjson.dumps(option).decode()


# --- unknown fields -----------------------------------------------------------------------------

_EMBEDDED_KEYS = frozenset({"apiVersion", "kind", "metadata"})


def _walk(value: Any, node: SchemaNode, path: str, out: list[str], prune: bool) -> None:
    """Collect (and with ``prune`` delete) the keys of ``value`` that ``node`` does not declare."""
    fields, values, items, keep, embedded = node.shape
    if isinstance(value, dict):
        if fields:
            unknown: list[str] | None = None
            for key, sub in value.items():
                child = fields.get(key)
                if child is None:
                    if keep or (embedded and key in _EMBEDDED_KEYS):
                        continue
                    out.append(f"{path}.{key}" if path else key)
                    if prune:
                        unknown = unknown or []
                        unknown.append(key)
                elif isinstance(sub, (dict, list)):
                    _walk(sub, child, f"{path}.{key}" if path else key, out, prune)
            if unknown:
                for key in unknown:
                    del value[key]
        elif values is not None:
            for key, sub in value.items():
                if isinstance(sub, (dict, list)):
                    _walk(sub, values, f"{path}.{key}" if path else key, out, prune)
        elif not keep and value:
            out.extend(f"{path}.{key}" if path else key for key in value)
            if prune:
                value.clear()
    elif isinstance(value, list) and items is not None:
        for index, sub in enumerate(value):
            if isinstance(sub, (dict, list)):
                _walk(sub, items, f"{path}[{index}]", out, prune)


def _has_unknown(value: Any, node: SchemaNode) -> bool:
    """Like :func:`_walk` but stops at the first unknown field and builds no paths (the common case on
    the write path is "nothing unknown", and skipping the path strings makes that ~40% cheaper)."""
    fields, values, items, keep, embedded = node.shape
    if isinstance(value, dict):
        if fields:
            for key, sub in value.items():
                child = fields.get(key)
                if child is None:
                    if not (keep or (embedded and key in _EMBEDDED_KEYS)):
                        return True
                elif isinstance(sub, (dict, list)) and _has_unknown(sub, child):
                    return True
        elif values is not None:
            for sub in value.values():
                if isinstance(sub, (dict, list)) and _has_unknown(sub, values):
                    return True
        elif not keep and value:
            return True
    elif isinstance(value, list) and items is not None:
        for sub in value:
            if isinstance(sub, (dict, list)) and _has_unknown(sub, items):
                return True
    return False


def unknown_fields(obj: dict[str, Any], gvk: GVK, *, registry: SchemaRegistry | None = None) -> list[str]:
    """Paths (``spec.containers[0].bogusField``) of fields ``gvk``'s schema does not declare, in document
    order. Maps (labels), ``x-kubernetes-preserve-unknown-fields`` and free-form types are not entered.
    Kinds without a schema report nothing. Must not mutate ``obj``."""
    registry = registry or default_registry()
    node = registry.node_for(gvk)
    if node is None or not _has_unknown(obj, node):
        return []
    out: list[str] = []
    _walk(obj, node, "", out, False)
    return out


def prune_unknown(obj: dict[str, Any], gvk: GVK, *, registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """Delete the fields :func:`unknown_fields` reports from ``obj`` IN PLACE and return ``obj``, as
    Kubernetes drops them when decoding. Meant for a freshly decoded request body, which the request
    owns; never pass shared (cached) objects. Kinds without a schema are returned untouched."""
    registry = registry or default_registry()
    node = registry.node_for(gvk)
    if node is not None and _has_unknown(obj, node):
        _walk(obj, node, "", [], True)
    return obj


# --- duplicate fields ---------------------------------------------------------------------------

_ESCAPED_COLON = re.compile(rb"\\u003[aA]")


class _Duplicates(dict):
    """An object decoded from JSON that repeated some keys (the last value wins, as in Kubernetes)."""

    __slots__ = ("duplicates",)


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    duplicates: list[str] | None = None
    for key, value in pairs:
        if key in obj:
            duplicates = duplicates or []
            if key not in duplicates:
                duplicates.append(key)
        obj[key] = value
    if duplicates is None:
        return obj
    marked = _Duplicates(obj)
    marked.duplicates = duplicates
    return marked


def _collect_duplicates(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if isinstance(value, _Duplicates):
            out.extend(f"{path}.{key}" if path else key for key in value.duplicates)
        for key, sub in value.items():
            if isinstance(sub, (dict, list)):
                _collect_duplicates(sub, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            if isinstance(sub, (dict, list)):
                _collect_duplicates(sub, f"{path}[{index}]", out)


def duplicate_fields(raw_json: bytes, parsed: Any = None) -> list[str]:
    """Paths (``spec.replicas``) of keys that appear twice in one object of the JSON body ``raw_json``.

    Fast path (a few µs): every object member owns exactly one ``:`` outside strings, and without
    duplicates the decoded object re-serialises to the same strings, so the colon counts of the raw
    body and of ``orjson.dumps(decoded)`` are equal; each dropped duplicate removes at least its own
    colon. Only an escaped colon (``\\u003a``) in the raw text could offset that, so such bodies take the
    slow path, a stdlib parse with ``object_pairs_hook``. Pass ``parsed`` if the body is already
    decoded. Bodies that are not JSON (YAML) report nothing.
    """
    if isinstance(raw_json, str):
        raw_json = raw_json.encode()
    if parsed is None:
        try:
            parsed = orjson.loads(raw_json)
        except orjson.JSONDecodeError:
            return []
    if not isinstance(parsed, (dict, list)):
        return []
    if raw_json.count(b":") == orjson.dumps(parsed).count(b":") and not _ESCAPED_COLON.search(raw_json):
        return []
    try:
        marked = json.loads(raw_json, object_pairs_hook=_pairs_hook)
    except ValueError:
        return []
    out: list[str] = []
    _collect_duplicates(marked, "", out)
    return out


# --- how the server reports them ----------------------------------------------------------------


def strict_problems(unknown: list[str], duplicates: list[str]) -> list[str]:
    """One text per problem, as in Kubernetes: ``unknown field "x"``, ``duplicate field "y"``. The server
    sends each as a ``Warning: 299`` header under ``fieldValidation=Warn``."""
    return [f'unknown field "{p}"' for p in unknown] + [f'duplicate field "{p}"' for p in duplicates]


def strict_decoding_error(problems: list[str]) -> StatusError:
    """The 400 for ``fieldValidation=Strict``: ``strict decoding error: unknown field "x", ...``."""
    return errors.bad_request("strict decoding error: " + ", ".join(problems))


def report_field_problems(problems: list[str], field_validation: str, warnings: list[str]) -> None:
    """Apply ``fieldValidation`` to unknown/duplicate-field problems: Strict raises the 400, Warn
    adds them to ``warnings`` (sent as Warning headers), Ignore drops them."""
    if not problems:
        return
    if field_validation == "Strict":
        raise strict_decoding_error(problems)
    if field_validation == "Warn":
        warnings.extend(problems)
