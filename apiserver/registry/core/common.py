"""Small helpers every core/v1 strategy uses: safe access into JSON dicts and field-error builders.

Objects reach the strategies as plain dicts that already passed the schema check, but a strategy
must never answer bad input with a 500, so every accessor here tolerates a wrong type (treating it
as absent). The error builders add what :mod:`machinery.errors` does not spell directly: Kubernetes'
``Not found: "x"`` / ``Too many`` texts, Go-like rendering of list values, and the one-liners for
"each message of a format check becomes an Invalid error at this path".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from machinery import validation
from machinery.errors import (
    NOT_FOUND_FIELD,
    TOO_MANY,
    FieldError,
    invalid_value,
    not_supported,
    render_value,
    required,
)
from machinery.quantity import Quantity, QuantityError, parse_quantity

#: the protocols a port may use (containers, services, endpoints, endpoint slices)
PROTOCOLS = ["SCTP", "TCP", "UDP"]

Obj = dict[str, Any]

IS_NEGATIVE = "must be greater than or equal to 0"
NOT_POSITIVE = "must be greater than 0"
IMMUTABLE = "field is immutable"


# --- typed access ------------------------------------------------------------------------------


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dicts(value: Any) -> Iterable[tuple[int, dict[str, Any]]]:
    """(index, item) for the dict items of a list (other items are skipped)."""
    for i, item in enumerate(as_list(value)):
        if isinstance(item, dict):
            yield i, item


def key_path(path: str, key: Any) -> str:
    """``data[key]``: how field.Path renders a map key."""
    return f"{path}[{key}]"


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("spec"))


def status_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("status"))


def meta_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("metadata"))


# --- error builders -----------------------------------------------------------------------------


class Shown:
    """A value printed verbatim in a field error (no quotes), e.g. ``[]string{"a"}``.

    machinery.errors quotes ``str`` values and calls ``str()`` on anything else.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def shown(value: Any) -> Any:
    """Lists of strings as Go prints them (``[]string{"a", "b"}``), other lists and dicts as compact
    JSON; scalars unchanged (so strings stay quoted)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return Shown("[]string{" + ", ".join(orjson.dumps(v).decode() for v in value) + "}")
    if isinstance(value, list | dict):
        return Shown(orjson.dumps(value).decode())
    return value


def not_found(path: str, value: Any) -> FieldError:
    """``Not found: "x"`` (field.NotFound)."""
    return FieldError(NOT_FOUND_FIELD, path, render_value(value))


def too_many(path: str, actual: int, limit: int) -> FieldError:
    """``Too many: 3: must have at most 2 items`` (field.TooMany)."""
    return FieldError(TOO_MANY, path, f"{actual}: must have at most {limit} items")


def format_errors(check: Callable[[str], list[str]], value: Any, path: str) -> list[FieldError]:
    """One ``Invalid value`` per message of a format check (``is_dns1123_label`` etc.)."""
    if not isinstance(value, str):
        return [invalid_value(path, value, "must be a string")]
    return [invalid_value(path, value, msg) for msg in check(value)]


def dns_label(value: Any, path: str) -> list[FieldError]:
    return format_errors(validation.is_dns1123_label, value, path)


def dns_subdomain(value: Any, path: str) -> list[FieldError]:
    return format_errors(validation.is_dns1123_subdomain, value, path)


def qualified_name(value: Any, path: str) -> list[FieldError]:
    return format_errors(validation.is_qualified_name, value, path)


def label_value(value: Any, path: str) -> list[FieldError]:
    """A label value, with the messages joined by ';' as Kubernetes does for taints/tolerations."""
    if not isinstance(value, str):
        return [invalid_value(path, value, "must be a string")]
    msgs = validation.is_valid_label_value(value)
    return [invalid_value(path, value, ";".join(msgs))] if msgs else []


def ip_address(value: Any, path: str) -> list[FieldError]:
    return format_errors(validation.is_valid_ip, value, path)


def one_of(value: Any, path: str, supported: list[str], *, allow_empty: bool = False) -> list[FieldError]:
    """``Required value`` when empty (unless allowed), ``Unsupported value`` when not listed."""
    if value in (None, ""):
        return [] if allow_empty else [required(path)]
    if value not in supported:
        return [not_supported(path, value, supported)]
    return []


def nonnegative(value: Any, path: str) -> list[FieldError]:
    if is_int(value) and value < 0:
        return [invalid_value(path, value, IS_NEGATIVE)]
    return []


def positive(value: Any, path: str) -> list[FieldError]:
    if is_int(value) and value <= 0:
        return [invalid_value(path, value, NOT_POSITIVE)]
    return []


def in_range(value: Any, path: str, lo: int, hi: int) -> list[FieldError]:
    if is_int(value) and not lo <= value <= hi:
        return [invalid_value(path, value, validation.inclusive_range_error(lo, hi))]
    return []


def immutable(new: Any, old: Any, path: str) -> list[FieldError]:
    """``field is immutable`` unless equal (absent, null and "" count as the same)."""
    if _blank(new) != _blank(old):
        return [invalid_value(path, shown(new), IMMUTABLE)]
    return []


def _blank(value: Any) -> Any:
    return None if value in (None, "", [], {}) else value


def port_num_or_name(value: Any, path: str) -> list[FieldError]:
    """ValidatePortNumOrName: an int is a port number, a string an IANA service name."""
    if is_int(value):
        return [invalid_value(path, value, m) for m in validation.is_valid_port_num(value)]
    if isinstance(value, str):
        return [invalid_value(path, value, m) for m in validation.is_valid_port_name(value)]
    return [invalid_value(path, value, "must be an integer or a string")]


# --- quantities --------------------------------------------------------------------------------


def quantity(value: Any) -> Quantity | None:
    """The parsed quantity, or None when absent or unparseable (validation reports the latter)."""
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def quantity_errors(value: Any, path: str) -> list[FieldError]:
    """Kubernetes rejects a bad quantity while decoding; we report it at its field."""
    try:
        parse_quantity(value)
    except QuantityError as err:
        return [invalid_value(path, value if isinstance(value, str) else str(value), str(err))]
    return []


def nonnegative_quantity(value: Any, path: str) -> list[FieldError]:
    parsed = quantity(value)
    if parsed is None:
        return quantity_errors(value, path)
    if parsed.sign() < 0:
        return [invalid_value(path, str(parsed), IS_NEGATIVE)]
    return []


def positive_quantity(value: Any, path: str) -> list[FieldError]:
    parsed = quantity(value)
    if parsed is None:
        return quantity_errors(value, path)
    if parsed.sign() <= 0:
        return [invalid_value(path, str(parsed), "must be greater than zero")]
    return []


# --- semantic comparison ---------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def _prune(value: Any) -> Any:
    """Drop empty values, as Kubernetes' semantic equality treats nil and empty alike."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if not _empty(v)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def normalized(value: Any) -> bytes:
    """A canonical form for semantic comparison (empties dropped, keys sorted)."""
    return orjson.dumps(_prune(value), option=orjson.OPT_SORT_KEYS)


def describe_diff(old: Any, new: Any, prefix: str = "", limit: int = 20) -> str:
    """A short, readable list of what differs (Kubernetes prints a Go cmp.Diff here)."""
    lines: list[str] = []
    _diff(_prune(old), _prune(new), prefix, lines)
    if len(lines) > limit:
        lines = [*lines[:limit], f"  ... and {len(lines) - limit} more"]
    return "\n".join(lines)


def _diff(old: Any, new: Any, path: str, lines: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _diff(old.get(key), new.get(key), f"{path}.{key}" if path else key, lines)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}[{i}]", lines)
        return
    if old is not None:
        lines.append(f"- {path}: {orjson.dumps(old).decode()}")
    if new is not None:
        lines.append(f"+ {path}: {orjson.dumps(new).decode()}")
